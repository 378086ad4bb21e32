# Copyright (c) mmot contributors. All rights reserved.
"""Every config of the zoo loads, and its model, hooks, metrics and training
dataset (wrappers around a tiny fake of the real data) build; the offline
digits baselines also train through the Runner."""
import copy
import glob
import math
import os.path as osp
import re
from types import SimpleNamespace

import numpy as np

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import mmot  # noqa: F401
from _runner_utils import load_tool
from mmot.datasets.long_tail_dataset import LongTailDataset
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


def test_authors_recipe_starts_stage2_at_160_for_90_epochs():
    """One truth for the authors' recipe (their ``range(160, 250)``): the
    standalone ``_ot-official.py`` configs run stage 1 to epoch 160 and
    stage 2 for 90 epochs, as the benchmark lists' ``ot_reweight_official``
    rows, which start from the zoo's epoch-160 models and say so."""
    official = [c for c in CONFIGS if re.search(
        r'resnet32_1xb16_cifar10{1,2}-lt-if\d+_ot-official\.py$', c)]
    assert len(official) == 8
    for c in official:
        cfg = Config.fromfile(osp.join(ROOT, c))
        start = cfg.default_hooks.ot_reweight.start_epoch
        assert (start, cfg.train_cfg.max_epochs - start) == (160, 90), c
    launch = load_tool('benchmark/launch.py')
    full = 0
    for path in glob.glob(osp.join(ROOT, 'configs', 'benchmarks', '*',
                                   'benchmark.yml')):
        spec = launch.load_list(path)
        for row in spec['rows']:
            if row['name'] != 'ot_reweight_official':
                continue
            cfg = Config.fromfile(osp.join(spec['configs'], row['config']))
            assert cfg.default_hooks.ot_reweight.start_epoch == 0, path
            opts = dict(o.split('=', 1) for o in row['options'])
            epochs = int(opts.get('train_cfg.max_epochs',
                                  cfg.train_cfg.max_epochs))
            start = int(re.search(r'epoch_?(\d+)\.pth$',
                                  opts['load_from']).group(1))
            # what the list reports is what the row runs
            assert row['info'] == dict(stage2_start_epoch=start,
                                       stage2_epochs=epochs), path
            if 'zoo' in opts['load_from']:  # the full budget
                full += 1
                assert (start, epochs) == (160, 90), path
    assert full >= 2


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
    if any(c.get('class_counts') is None for c in _consumers(cfg)):
        # who fills them
        HOOKS.build(copy.deepcopy(cfg.default_hooks.class_counts))

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


# ---------------------------------------------------------------------------
# class counts: read from the training dataset (ClassCountsHook), never typed
# ---------------------------------------------------------------------------
ALL_CONFIG_FILES = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
TYPED_COUNTS = re.compile(
    # class_counts = ..., class_counts=[...], but not the hook of
    # default_hooks=dict(class_counts=dict(type='ClassCountsHook'))
    r"(^|[^\w.])class_counts\s*=\s*(?!dict\(type='ClassCountsHook')[^\s)]"
    r'|_base_\.class_counts')  # _base_.class_counts, {{_base_.class_counts}}


def test_no_config_types_class_counts():
    """No config (bases included) writes class counts, as a list, a formula
    or a reference to a base's: ClassCountsHook reads them from the
    training dataset into the losses and metrics."""
    typed = []
    for path in ALL_CONFIG_FILES:
        with open(osp.join(ROOT, path), encoding='utf-8') as f:
            for i, line in enumerate(f, 1):
                code = line.split('#', 1)[0]
                if TYPED_COUNTS.search(code):
                    typed.append(f'{path}:{i}: {line.strip()}')
    assert not typed, '\n'.join(typed)
    # the checker catches each of the forms the configs used to have
    for line in ('class_counts = [int(4990 * imbalance_factor**(-i / 9))',
                 "dict(type='LongTailMetric', class_counts=class_counts)",
                 'class_counts=[5, 3, 1], per_class=True',
                 'loss=dict(class_counts=_base_.class_counts)',
                 'class_counts={{_base_.class_counts}},'):
        assert TYPED_COUNTS.search(line), line
    assert not TYPED_COUNTS.search(
        "    class_counts=dict(type='ClassCountsHook'),")


class LabelsOnly:
    """The labels of a balanced source with ``per_class`` images in each
    of ``num_classes`` classes, in a shuffled order (no image)."""

    def __init__(self, num_classes, per_class):
        rng = np.random.default_rng(0)
        self.labels = rng.permutation(
            np.repeat(np.arange(num_classes), per_class))
        self.metainfo = dict(classes=[f'c{k}' for k in range(num_classes)])

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return self.labels

    def get_cat_ids(self, idx):
        return [int(self.labels[idx])]


_SOURCES = {}


def long_tail_on_real_sizes(cfg):
    """The config's LongTailDataset on a labels-only source of the real
    CIFAR size (5000 / 500 images per class)."""
    lt = copy.deepcopy(_long_tail_cfg(cfg.train_dataloader.dataset))
    num_classes = cfg.model.head.num_classes
    key = (num_classes, SOURCE_PER_CLASS['CIFAR10' if num_classes == 10
                                         else 'CIFAR100'])
    if key not in _SOURCES:
        _SOURCES[key] = LabelsOnly(*key)
    kwargs = {k: v for k, v in lt.items() if k not in ('type', 'dataset')}
    return LongTailDataset(_SOURCES[key], **kwargs)


def _consumers(cfg):
    """The loss and metric configs that take class counts."""
    found = [cfg.model.head.get('loss', {})]
    for key in ('val_evaluator', 'test_evaluator'):
        for m in _metric_cfgs(cfg.get(key)):
            found.append(m)
            found.extend(m.get('metrics', None) or [])
    return [c for c in found if c.get('type') in (
        'LongTailMetric', 'PostHocMetric', 'BalancedSoftmaxLoss',
        'LogitAdjustLoss', 'LDAMLoss')]


@pytest.mark.parametrize(
    'path', [c for c in CONFIGS if 'cifar' in c and 'mmpretrain' not in c])
def test_cifar_training_set_gives_the_long_tail_counts(path):
    """Every CIFAR config: the losses and metrics that take class counts
    leave them to ClassCountsHook (registered), and its LongTailDataset
    on the real CIFAR sizes gives the long-tail formula's counts, the ones
    the configs used to type."""
    cfg = _load(path)
    consumers = _consumers(cfg)
    assert all(c.get('class_counts') is None for c in consumers)
    if consumers:
        assert cfg.default_hooks.class_counts.type == 'ClassCountsHook'
    lt_cfg = _long_tail_cfg(cfg.train_dataloader.dataset)
    num_classes = cfg.model.head.num_classes
    imbalance = lt_cfg['imbalance_factor']
    n_max = SOURCE_PER_CLASS['CIFAR10' if num_classes == 10 else
                             'CIFAR100'] - lt_cfg['meta_per_class']
    assert lt_cfg['profile'] == 'exp'
    expected = [int(n_max * imbalance**(-i / (num_classes - 1)))
                for i in range(num_classes)]
    assert long_tail_on_real_sizes(cfg).class_counts == expected


# what the CIFAR-10-LT IF 100 configs typed (10 meta images per class held
# out, then 4990 * 100^(-i / 9))
CIFAR10_LT_IF100 = [4990, 2991, 1793, 1075, 644, 386, 231, 138, 83, 49]
# The real data of the benchmark configs, where this machine has it: the
# lossless CIFAR-10 PNG folders and the official python CIFAR-100.
REAL_DATA = {
    'configs/benchmarks/_base_/cifar10_lt_if100_lossless.py':
    ('data/cifar10/png/train', 4990, 10),
    'configs/benchmarks/_base_/cifar100_lt_if100.py':
    ('data/cifar100/cifar-100-python/train', 490, 100),
}


@pytest.mark.parametrize('path', sorted(REAL_DATA))
def test_lt_if100_counts_from_the_real_data(path, monkeypatch):
    """CIFAR-10-LT and CIFAR-100-LT IF 100: the counts ClassCountsHook
    reads from the training set of the benchmark config (built from its
    train_dataloader config, as in a test-only run) are the long-tail
    formula's."""
    data, n_max, num_classes = REAL_DATA[path]
    if not osp.exists(osp.join(ROOT, data)):
        pytest.skip(f'{data} is absent (../shared/data/README.md)')
    monkeypatch.chdir(ROOT)  # the configs' data roots are relative
    cfg = _load(path)
    cfg.train_dataloader.dataset.dataset.pop('pipeline', None)
    from mmot.engine.hooks import ClassCountsHook
    from mmot.models.losses import BalancedSoftmaxLoss
    model = torch.nn.Module()
    model.loss = BalancedSoftmaxLoss()
    runner = SimpleNamespace(
        model=model, _train_loop=None, _val_loop=None, _test_loop=None,
        _train_dataloader=cfg.train_dataloader, default_scope=None)
    ClassCountsHook().before_run(runner)
    expected = [int(n_max * 100**(-i / (num_classes - 1)))
                for i in range(num_classes)]
    assert expected == (CIFAR10_LT_IF100 if num_classes == 10 else
                        expected) and sum(expected) in (12380, 10626)
    assert model.loss.class_counts == expected


# the configs that typed CE class weights computed from the counts; now a
# DRWHook from epoch 0 sets them: (config, old weights from the counts n)
def _effective_number(counts, k):
    cb_beta = 0.9999  # as the configs computed them
    w = [(1 - cb_beta) / (1 - cb_beta**n) for n in counts]
    return [x / sum(w) * k for x in w]


def _inverse_freq(counts, k):
    return [(1 / n) / sum(1 / m for m in counts) * k for n in counts]


CLASS_WEIGHT_CONFIGS = {
    'configs/baselines/resnet32_1xb128_cifar10-lt-if100_ce-effective-number'
    '.py': _effective_number,
    'configs/baselines/resnet32_1xb128_cifar10-lt-if100_ce-inverse-freq.py':
    _inverse_freq,
    'configs/baselines/resnet32_1xb16_cifar10-lt-if100_stage2-cw.py':
    _effective_number,
    'configs/benchmarks/cifar10-lt-if100-lossless/'
    'resnet32_1xb16_cifar10-lt-if100-lossless_ce-drw.py': _effective_number,
    'configs/benchmarks/cifar100-lt-if100/'
    'resnet32_1xb16_cifar100-lt-if100_ce-drw.py': _effective_number,
}


@pytest.mark.parametrize('path', sorted(CLASS_WEIGHT_CONFIGS))
def test_drw_from_epoch_0_sets_the_weights_the_configs_typed(path):
    """The CE class weights DRWHook(start_epoch=0) sets from the training
    set's counts are the very floats the configs used to compute from the
    typed counts (e.g. effective number, beta 0.9999, normalised to sum 10
    for CIFAR-10-LT IF 100's [4990, 2991, ..., 49]): the runs train the
    same."""
    cfg = _load(path)
    loss_cfg = cfg.model.head.loss
    assert loss_cfg.type == 'CrossEntropyLoss'
    assert loss_cfg.get('class_weight') is None
    if 'benchmarks' in path:  # the runner sets custom_hooks.0.seed
        assert cfg.custom_hooks[0].type == 'FeatureCacheHook'
    # a default hook: a run without the cache (custom_hooks=[]) keeps it
    drw = cfg.default_hooks.drw
    assert drw.type == 'DRWHook'
    assert not [h for h in cfg.get('custom_hooks', None) or []
                if h.type == 'DRWHook']
    assert drw.start_epoch == 0
    lt = long_tail_on_real_sizes(cfg)
    k = cfg.model.head.num_classes
    n_max = 4990 if k == 10 else 490
    counts = [int(n_max * 100**(-i / (k - 1))) for i in range(k)]
    assert k == 100 or counts == CIFAR10_LT_IF100
    assert lt.class_counts == counts
    old = CLASS_WEIGHT_CONFIGS[path](counts, k)

    model = torch.nn.Module()
    model.head = torch.nn.Module()
    model.head.loss_module = MODELS.build(copy.deepcopy(loss_cfg))
    runner = SimpleNamespace(model=model, epoch=0,
                             train_dataloader=SimpleNamespace(dataset=lt))
    HOOKS.build(copy.deepcopy(drw)).before_train_epoch(runner)
    weights = model.head.loss_module.class_weight
    assert weights == old  # the same float64 numbers, not just close
    assert sum(weights) == pytest.approx(k)
    # and so the same float32 / bfloat16 tensor the loss builds from them
    for dtype in (torch.float32, torch.bfloat16):
        assert torch.equal(torch.tensor(weights, dtype=dtype),
                           torch.tensor(old, dtype=dtype))


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
    runner = Runner.from_cfg(cfg)
    runner.train()
    # the counts ClassCountsHook read from the digits training set: the
    # ones the config typed before (113 * IF^(-i / 9), at most the 108, 112,
    # 107, 113, 111, 112, 111, 109, 104, 110 images left per class)
    counts = runner.train_dataloader.dataset.class_counts
    assert counts == [108, 81, 58, 41, 29, 21, 15, 10, 7, 5]
    for m in runner.val_loop.evaluator.metrics:
        if hasattr(m, 'class_counts'):
            assert m.class_counts == counts
    loss = runner.model.head.loss_module
    if hasattr(loss, 'set_class_counts'):
        assert loss.class_counts == counts
    metrics = runner.val_loop.run()
    assert 0 <= metrics['accuracy/top1'] <= 100
    assert 'long_tail/few_shot' in metrics
    assert metrics['long_tail/top1'] == pytest.approx(
        metrics['accuracy/top1'])
