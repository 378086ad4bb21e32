# Copyright (c) mmot contributors. All rights reserved.
"""ClassCountsHook: the training class counts come from the training
dataset into the losses and metrics built without them, in a training run
(then its test), in a test-only run (from the un-built train_dataloader
config), and a clear error when there is no training dataset."""
import itertools
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import BaseLoop, Runner

import mmot  # noqa: F401
from _runner_utils import ROOT
from mmot.engine.hooks import class_counts_hook
from mmot.engine.hooks.class_counts_hook import ClassCountsHook
from mmot.evaluation.metrics import LongTailMetric, PostHocMetric
from mmot.models.losses import BalancedSoftmaxLoss, LDAMLoss

pytestmark = pytest.mark.usefixtures('one_thread_module')

CONFIG = osp.join(ROOT, 'configs', 'baselines',
                  'resnet8_1xb32_sklearn8x8-lt-if20_balanced-softmax.py')
# the counts the digits baseline config used to type: the digits classes
# keep 108, 112, 107, 113, 111, 112, 111, 109, 104, 110 images once the test
# split and the meta set are out; n_max = 113 cut to 113 * 20^(-i / 9)
DIGITS_REST = [108, 112, 107, 113, 111, 112, 111, 109, 104, 110]
DIGITS_COUNTS = [min(int(113 * 20**(-i / 9)), n)
                 for i, n in enumerate(DIGITS_REST)]
_RUN_IDS = itertools.count()


def digits_cfg(work_dir):
    """The digits Balanced Softmax baseline (BalancedSoftmaxLoss and
    LongTailMetric without class_counts), one short epoch."""
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'class_counts_{next(_RUN_IDS)}'
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=20)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    # mmengine's serialisation runs gc.collect(): slow, not needed
    cfg.train_dataloader.dataset.dataset.serialize_data = False
    cfg.val_dataloader.dataset.serialize_data = False
    return cfg


def long_tail_metrics(loop):
    return [m for m in loop.evaluator.metrics if isinstance(m, LongTailMetric)]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch of the digits baseline: the runner and its checkpoint."""
    work_dir = tmp_path_factory.mktemp('class_counts_train')
    cfg = digits_cfg(work_dir)
    assert cfg.default_hooks.class_counts.type == 'ClassCountsHook'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, osp.join(str(work_dir), 'epoch_1.pth')


def test_hook_fills_the_loss_and_the_metric_in_a_run(trained, monkeypatch):
    runner, _ = trained
    lt = runner.train_dataloader.dataset
    assert lt.class_counts == DIGITS_COUNTS
    loss = runner.model.head.loss_module
    assert isinstance(loss, BalancedSoftmaxLoss)
    assert loss.class_counts == DIGITS_COUNTS
    torch.testing.assert_close(
        loss.log_prior,
        (torch.tensor(DIGITS_COUNTS, dtype=torch.float64) /
         sum(DIGITS_COUNTS)).log().float())
    metric, = long_tail_metrics(runner.val_loop)
    assert metric.class_counts == DIGITS_COUNTS
    metrics = runner.val_loop.run()  # the buckets need the counts
    assert metrics['long_tail/few_shot'] == metrics['long_tail/few_shot']
    assert not metric._warned_no_counts

    # runner.test() after train(): before_run again; the counts are not
    # read twice, the (new) test metric gets them, the rest is kept
    hook, = [h for h in runner.hooks if isinstance(h, ClassCountsHook)]
    reads = []
    monkeypatch.setattr(class_counts_hook, 'training_labels',
                        lambda d: reads.append(d) or (None, None))
    runner.test()
    assert reads == []
    assert hook.class_counts == DIGITS_COUNTS
    metric, = long_tail_metrics(runner.test_loop)
    assert metric.class_counts == DIGITS_COUNTS
    assert loss.class_counts == DIGITS_COUNTS


def test_test_only_run_reads_the_train_dataloader_config(trained, tmp_path):
    _, ckpt = trained
    cfg = digits_cfg(tmp_path)
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    # the train loop and its dataloader were never built: the dataset alone
    assert not isinstance(runner._train_loop, BaseLoop)
    assert isinstance(runner._train_dataloader, dict)
    metric, = long_tail_metrics(runner.test_loop)
    assert metric.class_counts == DIGITS_COUNTS
    assert runner.model.head.loss_module.class_counts == DIGITS_COUNTS
    assert 'long_tail/few_shot' in metrics


def test_no_training_dataset_is_a_clear_error(trained, tmp_path):
    _, ckpt = trained
    cfg = digits_cfg(tmp_path)
    cfg.load_from = ckpt
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
    cfg.param_scheduler = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as info:
        runner.test()
    msg = str(info.value)
    assert 'ClassCountsHook: test_evaluator.1 (LongTailMetric) needs the ' \
        'training class counts' in msg
    assert 'class_counts=[...]' in msg and 'train_dataloader' in msg

    # counts given to the metric: nothing to read; the loss, unused to
    # test, stays without them (its forward would raise)
    cfg.test_evaluator[1].class_counts = DIGITS_COUNTS
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 'long_tail/few_shot' in metrics
    loss = runner.model.head.loss_module
    assert loss.class_counts is None
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        loss(torch.zeros(2, 10), torch.tensor([0, 1]))


class _Labels:
    """A dataset with only ``get_cat_ids``: its label histogram."""

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return [self.labels[i]]


def _runner(model, dataset=None, metrics=()):
    """The parts of a Runner the hook reads: the model, a built train loop
    whose dataloader has ``dataset``, a built test loop with ``metrics``."""

    class Loop(BaseLoop):
        def __init__(self, **attrs):
            self.__dict__.update(attrs)

        def run(self):
            pass

    train = Loop(dataloader=SimpleNamespace(dataset=dataset)) \
        if dataset is not None else None
    return SimpleNamespace(
        model=model, _train_loop=train, _train_dataloader=None,
        _val_loop=None,
        _test_loop=Loop(evaluator=SimpleNamespace(metrics=list(metrics))))


def test_hook_keeps_given_counts_and_fills_wrapped_metrics():
    model = nn.Module()
    model.given = LDAMLoss([5, 5, 5])
    model.later = LDAMLoss()
    posthoc = PostHocMetric(method='logit_adjust')
    given = LongTailMetric(class_counts=[1, 1, 1])
    hook = ClassCountsHook()
    hook.before_run(_runner(model, _Labels([0] * 6 + [1] * 3 + [2]),
                            [posthoc, given]))
    assert model.later.class_counts == [6, 3, 1]
    assert model.given.class_counts == [5, 5, 5]
    assert given.class_counts == [1, 1, 1]
    assert posthoc.class_counts == [6, 3, 1]
    assert posthoc.metrics[0].class_counts == [6, 3, 1]


def test_hook_errors_name_the_consumer():
    # a training dataset without labels
    model = nn.Module()
    model.head = nn.Module()
    model.head.loss_module = BalancedSoftmaxLoss()
    with pytest.raises(ValueError) as info:
        ClassCountsHook().before_run(_runner(model, dataset=[1, 2, 3]))
    assert 'model.head.loss (BalancedSoftmaxLoss) needs the training class ' \
        'counts' in str(info.value)
    assert 'get_cat_ids' in str(info.value)
    # nothing needs counts: the dataset is not even looked at
    model.head.loss_module = BalancedSoftmaxLoss([2, 1])
    ClassCountsHook().before_run(_runner(model, dataset=[1, 2, 3]))
