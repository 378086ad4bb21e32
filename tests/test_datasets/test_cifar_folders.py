# Copyright (c) mmot contributors. All rights reserved.
"""The CIFAR configs train for a few iterations on the real, lossless
CIFAR-10 (a small subset of ../shared/data/cifar10-lossless.npz in the PNG
class folders the lossless benchmark reads) through the Runner: the OT
families (paper, authors' code), the CE baseline, and the decoupled stage-2
variants and post-hoc corrections from the CE checkpoint."""
import copy
import json
import math
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmot  # noqa: F401
from mmot.datasets.long_tail_dataset import long_tail_counts

from _runner_utils import (LOSSLESS, TEST_PER_CLASS,  # noqa: F401
                           TRAIN_PER_CLASS, cifar_png)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = [
    pytest.mark.usefixtures('one_thread_module'),
    pytest.mark.skipif(
        not osp.isfile(LOSSLESS),
        reason=f'the lossless CIFAR-10 is not available ({LOSSLESS} is '
        'absent)')]

IMBALANCE = 4  # 20 -> 5 images per class
COUNTS = long_tail_counts(TRAIN_PER_CLASS - 10, 10, IMBALANCE)


def cfg_path(name):
    return osp.join(ROOT, 'configs', name)


def folder_cfg(name, data_root, work_dir, max_epochs):
    """Config ``name`` with its data swapped for the class folders of
    configs/_base_/datasets/cifar10_lt_folder.py (as the lossless benchmark
    reads them), small and short."""
    cfg = Config.fromfile(cfg_path(name))
    folder = Config.fromfile(cfg_path('_base_/datasets/cifar10_lt_folder.py'))
    lt = cfg.train_dataloader.dataset
    lt.dataset = copy.deepcopy(folder.train_dataloader.dataset.dataset)
    lt.dataset.data_root = data_root
    lt.meta_pipeline = copy.deepcopy(folder.test_pipeline)
    lt.imbalance_factor = IMBALANCE
    cfg.data_preprocessor = folder.data_preprocessor
    cfg.train_dataloader.batch_size = 16
    cfg.train_dataloader.num_workers = 0
    val = copy.deepcopy(folder.val_dataloader)
    val.dataset.data_root = data_root
    val.num_workers = 0
    cfg.val_dataloader = cfg.test_dataloader = val
    for key in ('val_evaluator', 'test_evaluator'):
        for metric in cfg[key]:
            if 'class_counts' in metric:
                metric.class_counts = COUNTS
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                         val_interval=max_epochs)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


def _scalars(work_dir):
    logs = [osp.join(d, 'vis_data', 'scalars.json')
            for d in sorted(os.listdir(work_dir))
            if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json'))]
    assert logs, f'no scalars.json in {work_dir}'
    with open(osp.join(work_dir, logs[-1])) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('name', [
    'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot.py',
    'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-official.py',
])
def test_ot_configs_train_on_cifar(name, cifar_png, tmp_path):
    cfg = folder_cfg(name, cifar_png, tmp_path, max_epochs=2)
    cfg.default_hooks.ot_reweight.start_epoch = 1  # epoch 0: stage 1, 1: OT
    runner = Runner.from_cfg(cfg)
    lt = runner.train_dataloader.dataset
    assert lt.class_counts == COUNTS
    runner.train()
    hook = [h for h in runner.hooks if type(h).__name__ == 'OTReweightHook']
    assert hook and hook[0].active
    logged = _scalars(tmp_path)
    assert any('ot_dist' in r for r in logged)
    if name.endswith('official.py'):  # + 10 x meta-set CE, head only
        assert any('loss_meta' in r for r in logged)
        ck0 = torch.load(osp.join(tmp_path, 'epoch_1.pth'),
                         map_location='cpu')
        ck1 = torch.load(osp.join(tmp_path, 'epoch_2.pth'),
                         map_location='cpu')
        moved = 0
        for k, v in ck1['state_dict'].items():
            if not k.startswith('backbone.'):
                continue
            if 'running_' in k or 'num_batches_tracked' in k:
                # BatchNorm left in train mode, as the authors' code
                moved += not torch.equal(v, ck0['state_dict'][k])
            else:  # frozen parameters
                assert torch.equal(v, ck0['state_dict'][k]), k
        assert moved > 0
    metrics = runner.val_loop.run()
    assert 0 <= metrics['long_tail/top1'] <= 100
    with open(osp.join(tmp_path, 'ot_class_weights.json')) as f:
        weights = json.load(f)
    assert weights['class_counts'] == COUNTS
    assert len(weights['epochs'][-1]['class_mean_weight']) == 10


@pytest.fixture(scope='module')
def stage1(cifar_png, tmp_path_factory):
    """One epoch of the CE baseline: the shared stage-1 checkpoint."""
    work_dir = tmp_path_factory.mktemp('ce')
    cfg = folder_cfg('baselines/resnet32_1xb128_cifar10-lt-if100_ce.py',
                     cifar_png, work_dir, max_epochs=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    return ckpt


@pytest.mark.parametrize('name', [
    'baselines/resnet32_1xb16_cifar10-lt-if100_stage2-ce.py',
    'baselines/resnet32_1xb16_cifar10-lt-if100_stage2-cw.py',
    'baselines/resnet32_1xb16_cifar10-lt-if100_stage2-crt.py',
    'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-stage2.py',
])
def test_decoupled_stage2_from_one_checkpoint(name, stage1, cifar_png,
                                              tmp_path):
    cfg = folder_cfg(name, cifar_png, tmp_path, max_epochs=1)
    if cfg.get('load_from'):
        cfg.load_from = stage1
    else:  # cRT: backbone only, through init_cfg
        assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
        cfg.model.backbone.init_cfg.checkpoint = stage1
    runner = Runner.from_cfg(cfg)
    runner.train()
    before = torch.load(stage1, map_location='cpu')['state_dict']
    after = runner.model.state_dict()
    for k, v in before.items():
        if k.startswith('backbone.'):  # loaded, then frozen (BN stats too)
            assert torch.equal(after[k].cpu(), v), k
    assert not torch.equal(after['head.fc.weight'].cpu(),
                           before['head.fc.weight'])


def test_posthoc_configs_on_the_stage1_checkpoint(stage1, cifar_png,
                                                  tmp_path):
    base = 'baselines/resnet32_1xb128_cifar10-lt-if100_posthoc-'
    metrics = []
    for method in ('logit-adjust', 'ot', 'otlm'):
        cfg = folder_cfg(base + method + '.py', cifar_png, tmp_path, 1)
        metrics += list(cfg.test_evaluator)
    cfg.test_evaluator = metrics
    cfg.load_from = stage1
    results = Runner.from_cfg(cfg).test()
    for method in ('logit_adjust', 'ot', 'otlm'):
        top1 = [v for k, v in results.items()
                if k.startswith(f'posthoc_{method}/') and k.endswith('top1')
                and '/raw/' not in k]
        assert top1 and 0 <= top1[0] <= 100, sorted(results)


@pytest.mark.parametrize('method, loss_type', [
    ('ce-inverse-freq', 'CrossEntropyLoss'),
    ('ce-effective-number', 'CrossEntropyLoss'),
    ('focal', 'FocalLoss'),
    ('seesaw', 'SeesawLoss'),
    ('class-balanced-dataset', 'CrossEntropyLoss'),
    ('balanced-softmax', 'BalancedSoftmaxLoss'),
    ('logit-adjust', 'LogitAdjustLoss'),
    ('ldam-drw', 'LDAMLoss'),
])
def test_baseline_trains_on_cifar(method, loss_type, cifar_png, tmp_path):
    """Runner smoke test of every baseline with its own stage 1: one epoch
    on the lossless subset, finite losses, the configured loss in the head."""
    name = f'baselines/resnet32_1xb128_cifar10-lt-if100_{method}.py'
    raw = Config.fromfile(cfg_path(name))
    cbd = raw.train_dataloader.dataset
    if cbd.type == 'ClassBalancedDataset':
        # folder_cfg swaps the data of a top-level LongTailDataset: do it on
        # the CE config, then put the repeat-factor wrapper around it.
        cfg = folder_cfg('baselines/resnet32_1xb128_cifar10-lt-if100_ce.py',
                         cifar_png, tmp_path, max_epochs=1)
        cbd.dataset = cfg.train_dataloader.dataset
        cfg.train_dataloader.dataset = cbd
    else:
        cbd = None
        cfg = folder_cfg(name, cifar_png, tmp_path, max_epochs=1)
    for h in cfg.get('custom_hooks', []):
        if h.type == 'DRWHook':
            h.start_epoch = 0  # exercise the deferred re-weighting at once
    runner = Runner.from_cfg(cfg)
    assert type(runner.model.head.loss_module).__name__ == loss_type
    if cbd is not None:
        assert type(runner.train_dataloader.dataset).__name__ == \
            'ClassBalancedDataset'
    runner.train()
    losses = [r['loss'] for r in _scalars(tmp_path) if 'loss' in r]
    assert losses and all(math.isfinite(v) for v in losses)
    if method == 'ldam-drw':
        assert runner.model.head.loss_module.class_weight is not None
