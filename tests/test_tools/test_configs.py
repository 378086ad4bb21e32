# Copyright (c) mmot contributors. All rights reserved.
"""Every config of the zoo loads, and its model, hooks, metrics and training
dataset (wrappers around a tiny fake of the real data) build; the offline
digits baselines also train through the Runner."""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import mmot  # noqa: F401
from mmot.datasets.long_tail_dataset import LongTailDataset, long_tail_counts
from mmpretrain.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS

pytestmark = pytest.mark.usefixtures('one_thread_module')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)
# configs that inherit an mmpretrain config through the `mmpretrain::` scope
MMPRETRAIN_SCOPED = [c for c in CONFIGS if c.endswith('_ot-mmpretrain.py')]

# the real sizes of the balanced sources that LongTailDataset cuts
SOURCE_PER_CLASS = {'CIFAR10': 5000, 'CIFAR100': 500}


def _pkg_resources_available():
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        return False
    return True


_CONFIGS = {}


def _load(path):
    """A fresh copy of the config (each file is parsed once)."""
    if path in MMPRETRAIN_SCOPED and not _pkg_resources_available():
        pytest.skip('mmengine resolves `mmpretrain::` configs with '
                    'pkg_resources, which this setuptools (>=82) lacks; '
                    'requirements pin setuptools<82')
    if path not in _CONFIGS:
        _CONFIGS[path] = Config.fromfile(osp.join(ROOT, path))
    return copy.deepcopy(_CONFIGS[path])


def _metric_cfgs(evaluator):
    if evaluator is None:
        return []
    if isinstance(evaluator, dict):
        evaluator = evaluator.get('metrics', evaluator)
    return [evaluator] if isinstance(evaluator, dict) else list(evaluator)


def _long_tail_cfg(dataset_cfg):
    """The LongTailDataset config inside (possibly) a dataset wrapper."""
    while dataset_cfg is not None:
        if dataset_cfg['type'] == 'LongTailDataset':
            return dataset_cfg
        dataset_cfg = dataset_cfg.get('dataset')
    return None


class FakeData:
    """Annotation files ``"path label"`` of a tiny fake dataset (no images
    are read to build a dataset), made once per (classes, per-class) pair."""

    def __init__(self, root):
        self.root = root
        self.made = {}

    def ann_file(self, num_classes, per_class):
        key = (num_classes, per_class)
        if key not in self.made:
            path = osp.join(self.root, f'fake_{num_classes}x{per_class}.txt')
            with open(path, 'w') as f:
                for k in range(num_classes):
                    for i in range(per_class):
                        f.write(f'c{k}/{i}.jpg {k}\n')
            self.made[key] = path
        return self.made[key]

    def dataset(self, inner, num_classes, per_class):
        """A CustomDataset with ``per_class`` samples of each class and the
        pipeline of the config's ``inner`` dataset."""
        return dict(
            type='CustomDataset',
            data_root=self.root,
            ann_file=self.ann_file(num_classes, per_class),
            pipeline=inner.get('pipeline', []),
            # mmengine's serialisation runs gc.collect(): slow, not needed
            serialize_data=False,
            metainfo=dict(classes=[f'c{k}' for k in range(num_classes)]))


def tiny_train_dataset(dataset_cfg, num_classes, fake):
    """``dataset_cfg`` with its source datasets (except the offline digits)
    swapped for tiny fakes that still survive the long-tail cut."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    lt = _long_tail_cfg(dataset_cfg)
    assert lt is not None, 'the training set is not a LongTailDataset'
    if lt['dataset']['type'] == 'DigitsDataset':
        return dataset_cfg
    meta = lt.get('meta_per_class', 10)
    imbalance = lt.get('imbalance_factor')
    # n_max = IF + 1 keeps >= 1 image in the rarest class after the cut
    per_class = meta + (int(math.ceil(imbalance)) + 1 if imbalance else 1)
    lt['dataset'] = fake.dataset(lt['dataset'], num_classes, per_class)
    if lt.get('meta_dataset') is not None:
        lt['meta_dataset'] = fake.dataset(lt['meta_dataset'], num_classes,
                                          meta)
    return dataset_cfg


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # what the Runner does with the configs' default_scope='mmpretrain'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='module')
def fake(tmp_path_factory):
    return FakeData(str(tmp_path_factory.mktemp('fake_data')))


_MODELS = {}


def _build_model(model_cfg):
    # the same model config (e.g. one ResNet-152) is built only once
    key = model_cfg.pretty_text if hasattr(model_cfg, 'pretty_text') \
        else repr(model_cfg)
    if key not in _MODELS:
        _MODELS[key] = MODELS.build(copy.deepcopy(model_cfg))
    return _MODELS[key]


def test_zoo_has_the_paper_configs():
    names = [osp.basename(c) for c in CONFIGS]
    for ds in ('cifar10-lt', 'cifar100-lt'):
        for imb in (200, 100, 50, 20):
            assert f'resnet32_1xb16_{ds}-if{imb}_ot.py' in names
            assert f'resnet32_1xb16_{ds}-if{imb}_ot-official.py' in names
    for word in ('imagenet-lt_ot', 'places-lt_ot', 'inat2018_ot',
                 'ot-label-prototype', 'ot-feature-prototype',
                 'ot-combined-whole', 'ot-combined-random',
                 'ot-combined-prototype-scratch', '_ce.py', 'ldam-drw',
                 'balanced-softmax', 'logit-adjust', 'posthoc-ot',
                 'posthoc-otlm', 'stage2-crt'):
        assert any(word in n for n in names), word


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(path, fake):
    cfg = _load(path)
    model = _build_model(cfg.model)
    num_classes = cfg.model.head.num_classes
    assert cfg.data_preprocessor.num_classes == num_classes, \
        'data_preprocessor and head disagree on the number of classes'
    assert model.head.fc.out_features == num_classes

    for hook in cfg.get('custom_hooks', None) or []:
        HOOKS.build(copy.deepcopy(hook))
    ot = cfg.default_hooks.get('ot_reweight')
    if ot is not None:
        built = HOOKS.build(copy.deepcopy(ot))
        assert cfg.model.type in ('OTImageClassifier', 'AuthorsOTImageClassifier')
        assert built.t1 < cfg.train_cfg.max_epochs
    for metric in _metric_cfgs(cfg.get('val_evaluator')) + _metric_cfgs(
            cfg.get('test_evaluator')):
        METRICS.build(copy.deepcopy(metric))

    dataset = DATASETS.build(
        tiny_train_dataset(cfg.train_dataloader.dataset, num_classes, fake))
    inner = dataset
    while not isinstance(inner, LongTailDataset):
        inner = inner.dataset
    assert inner.num_classes == num_classes
    assert len(inner.meta_indices) == num_classes * inner.meta_per_class
    assert len(inner.get_meta_dataset()) == len(inner.meta_indices)
    assert len(dataset) >= len(inner) > 0
    sampler = DATA_SAMPLERS.build(
        copy.deepcopy(cfg.train_dataloader.sampler),
        default_args=dict(dataset=dataset, seed=0))
    assert len(list(iter(sampler))) > 0


@pytest.mark.parametrize(
    'path', [c for c in CONFIGS if 'cifar' in c and 'mmpretrain' not in c])
def test_cifar_class_counts_match_the_long_tail_cut(path):
    """The class counts written in the configs (metric, losses) are the
    ones LongTailDataset computes for the real CIFAR training sets."""
    cfg = _load(path)
    lt = _long_tail_cfg(cfg.train_dataloader.dataset)
    num_classes = cfg.model.head.num_classes
    n_source = SOURCE_PER_CLASS.get(lt['dataset']['type'],
                                    5000 if num_classes == 10 else 500)
    expected = long_tail_counts(n_source - lt['meta_per_class'], num_classes,
                                lt['imbalance_factor'], lt['profile'])
    metrics = [m for m in _metric_cfgs(cfg.val_evaluator or
                                       cfg.test_evaluator)
               if m['type'] in ('LongTailMetric', 'PostHocMetric')]
    if not metrics:  # the held-out meta set's predictions: no bucket
        assert cfg.test_dataloader.dataset.type == 'LongTailMetaSet'
        return
    assert metrics[0]['class_counts'] == expected
    loss = cfg.model.head.loss
    if 'class_counts' in loss:
        assert loss['class_counts'] == expected
    for m in _metric_cfgs(cfg.get('test_evaluator')):
        if m.get('class_counts') is not None:
            assert m['class_counts'] == expected


def test_class_weights_in_configs():
    cw = _load('configs/baselines/'
               'resnet32_1xb128_cifar10-lt-if100_ce-inverse-freq.py')
    counts = torch.tensor(cw.class_counts, dtype=torch.float64)
    w = torch.tensor(cw.model.head.loss.class_weight, dtype=torch.float64)
    assert torch.allclose(w * counts, (w * counts)[0].expand(10))
    assert float(w.sum()) == pytest.approx(10)
    cb = _load('configs/baselines/'
               'resnet32_1xb128_cifar10-lt-if100_ce-effective-number.py')
    from mmot.models.weight_learners.weight_vector import \
        effective_number_weights
    expected = effective_number_weights(counts, 0.9999).double()
    assert torch.allclose(
        torch.tensor(cb.model.head.loss.class_weight, dtype=torch.float64),
        expected, rtol=1e-5)


def test_ablations_change_only_their_factor():
    base = _load('configs/ot_reweight/resnet32_1xb16_cifar100-lt-if200_ot.py')
    rw = base.model.reweighter
    changes = {
        'label-prototype': dict(cost=dict(type='LabelCost', mode='01')),
        'feature-prototype': dict(cost=dict(type='FeatureCost',
                                            metric='cosine')),
        'combined-whole': dict(meta_mode='whole'),
        'combined-random': dict(meta_mode='random'),
    }
    for name, change in changes.items():
        cfg = _load('configs/ot_reweight/'
                    f'resnet32_1xb16_cifar100-lt-if200_ot-{name}.py')
        assert cfg.model.reweighter == dict(copy.deepcopy(rw), **change)
        assert {k: v for k, v in cfg.model.items() if k != 'reweighter'} == \
            {k: v for k, v in base.model.items() if k != 'reweighter'}
        assert cfg.default_hooks == base.default_hooks
        assert cfg.train_dataloader == base.train_dataloader
    scratch = _load('configs/ot_reweight/resnet32_1xb16_cifar100-lt-if200_'
                    'ot-combined-prototype-scratch.py')
    assert scratch.model.reweighter.learner.type == 'ScratchWeights'


def test_decoupled_stage2_freezes_all_but_the_head():
    cfg = _load('configs/baselines/'
                'resnet32_1xb16_cifar10-lt-if100_stage2-ce.py')
    model = MODELS.build(cfg.model)
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'head.fc.weight', 'head.fc.bias'}
    bns = [m for m in model.backbone.modules()
           if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)


DIGITS_BASELINES = [c for c in CONFIGS
                    if c.startswith('configs/baselines/resnet8_')]


@pytest.mark.parametrize('path', DIGITS_BASELINES)
def test_digits_baseline_trains(path, tmp_path):
    cfg = _load(path)
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
    cfg.param_scheduler = []
    for hook in cfg.get('custom_hooks', None) or []:
        if hook['type'] == 'DRWHook':
            hook['start_epoch'] = 1  # both phases of DRW
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    # mmengine's serialisation runs gc.collect(): slow, not needed
    cfg.train_dataloader.dataset.dataset.serialize_data = False
    cfg.val_dataloader.dataset.serialize_data = False
    # the configured counts are the ones of the real digits split
    lt = DATASETS.build(cfg.train_dataloader.dataset)
    assert lt.class_counts == cfg.class_counts
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    assert 0 <= metrics['accuracy/top1'] <= 100
    assert 'long_tail/few_shot' in metrics
    assert metrics['long_tail/top1'] == pytest.approx(
        metrics['accuracy/top1'])
