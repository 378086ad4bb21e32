# Copyright (c) mmot contributors. All rights reserved.
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmpretrain.registry import DATA_SAMPLERS, HOOKS
from mmot.datasets.samplers import ClassBalancedSampler
from mmot.engine.hooks.drw_hook import DRWHook, drw_class_weights
from mmot.models.losses import LDAMLoss

COUNTS = [40, 12, 5]


# ----------------------------------------------------------------- DRW ----
def test_drw_class_weights():
    w = drw_class_weights(COUNTS, 'effective_num', beta=0.9999)
    raw = [(1 - 0.9999) / (1 - 0.9999**n) for n in COUNTS]
    expected = [r * 3 / sum(raw) for r in raw]
    assert w == pytest.approx(expected)
    assert sum(w) == pytest.approx(3.)
    assert w[0] < w[1] < w[2]
    inv = drw_class_weights(COUNTS, 'inverse_freq')
    assert inv == pytest.approx([3 * (1 / n) / sum(1 / m for m in COUNTS)
                                 for n in COUNTS])
    # beta -> 0 gives equal weights
    assert drw_class_weights(COUNTS, beta=0.) == pytest.approx([1., 1., 1.])
    with pytest.raises(ValueError, match='weighting'):
        drw_class_weights(COUNTS, 'sqrt')


class ToyLTDataset(Dataset):
    """Tiny imbalanced dataset with mmengine's ``get_cat_ids``: its class
    counts are its label histogram (``training_labels``)."""

    def __init__(self):
        self.labels = sum(([k] * n for k, n in enumerate(COUNTS)), [])
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(len(self.labels), 2, generator=g)

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return [self.labels[i]]

    def __getitem__(self, i):
        return dict(inputs=self.x[i], label=self.labels[i])


class ToyModel(BaseModel):

    def __init__(self, loss):
        super().__init__()
        self.head = nn.Module()
        self.head.fc = nn.Linear(2, 3)
        self.head.loss_module = loss

    def forward(self, inputs, label=None, mode='tensor'):
        logits = torch.tanh(self.head.fc(inputs))
        if mode == 'loss':
            return dict(loss=self.head.loss_module(logits, label))
        return logits


class Recorder(Hook):
    priority = 'LOW'  # after DRWHook (NORMAL)

    def __init__(self):
        self.seen = []

    def before_train_epoch(self, runner):
        cw = runner.model.head.loss_module.class_weight
        self.seen.append(None if cw is None else list(cw))


def test_drw_hook_in_real_runner(tmp_path):
    rec = Recorder()
    runner = Runner(
        model=ToyModel(LDAMLoss(COUNTS, s=5)),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=ToyLTDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
            collate_fn=dict(type='default_collate'),
            batch_size=16,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[DRWHook(start_epoch=2), rec],
        default_scope='mmpretrain',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')
    runner.train()
    w = drw_class_weights(COUNTS)
    assert rec.seen[0] is None and rec.seen[1] is None
    assert rec.seen[2] == pytest.approx(w)
    assert rec.seen[3] == pytest.approx(w)


def _fake_runner(model, epoch, dataset=None):
    return SimpleNamespace(
        model=model,
        epoch=epoch,
        train_dataloader=SimpleNamespace(dataset=dataset))


def test_drw_hook_resume_wrapper_and_errors():
    orig = [1., 1., 1.]
    model = ToyModel(LDAMLoss(COUNTS, class_weight=orig))
    wrapped = nn.DataParallel(model)  # a registered model wrapper
    hook = HOOKS.build(
        dict(type='DRWHook', _scope_='mmpretrain', start_epoch=3,
             class_counts=COUNTS, weighting='inverse_freq'))
    # resuming directly into the re-weighted phase
    hook.before_train_epoch(_fake_runner(wrapped, 5))
    assert model.head.loss_module.class_weight == pytest.approx(
        drw_class_weights(COUNTS, 'inverse_freq'))
    # an earlier epoch restores the loss's own weights
    hook.before_train_epoch(_fake_runner(wrapped, 2))
    assert model.head.loss_module.class_weight == orig

    # counts from neither argument nor dataset -> clear error
    hook = DRWHook(start_epoch=0)
    with pytest.raises(ValueError, match='class_counts'):
        hook.before_train_epoch(
            _fake_runner(ToyModel(LDAMLoss(COUNTS)), 0, dataset=[1, 2]))
    # loss without class_weight -> clear error
    bad = ToyModel(LDAMLoss(COUNTS))
    bad.head.loss_module = nn.MSELoss()
    with pytest.raises(AttributeError, match='class_weight'):
        DRWHook(start_epoch=0, class_counts=COUNTS).before_train_epoch(
            _fake_runner(bad, 0))
    with pytest.raises(AttributeError, match='loss_attr'):
        DRWHook(start_epoch=0, class_counts=COUNTS,
                loss_attr='neck.loss').before_train_epoch(
                    _fake_runner(model, 0))


# ------------------------------------------------------------- sampler ----
class LabelsOnly:
    """Dataset with only the mmengine get_cat_ids API."""

    def __init__(self, labels):
        self.labels = list(labels)

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return [self.labels[i]]


class WithGtLabels(LabelsOnly):

    def get_gt_labels(self):
        import numpy as np
        return np.asarray(self.labels)


# 4 classes, 1000 / 100 / 10 / 2 images; class 4 has no image
IMB = [0] * 1000 + [1] * 100 + [2] * 10 + [3] * 2


def test_sampler_balances_classes():
    ds = LabelsOnly(IMB)
    sampler = DATA_SAMPLERS.build(
        dict(type='ClassBalancedSampler', _scope_='mmpretrain', dataset=ds,
             seed=3))
    assert len(sampler) == len(ds)
    draws = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        draws += list(sampler)
    labels = torch.tensor([IMB[i] for i in draws])
    freq = torch.bincount(labels, minlength=4).double() / len(labels)
    assert (freq - 0.25).abs().max() < 0.03
    # within a class, images are drawn uniformly: all 10 of class 2 appear
    assert set(i for i in draws if IMB[i] == 2) == set(range(1100, 1110))
    # the same labels via get_gt_labels give the same draws
    fast = ClassBalancedSampler(WithGtLabels(IMB), seed=3)
    fast.set_epoch(3)
    assert list(fast) == draws[-len(ds):]


def test_sampler_determinism():
    ds = LabelsOnly(IMB)
    s = ClassBalancedSampler(ds, seed=7)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    s.set_epoch(0)
    assert list(s) == e0
    assert e0 != e1
    assert list(ClassBalancedSampler(ds, seed=7)) == e0
    assert list(ClassBalancedSampler(ds, seed=8)) != e0


def test_sampler_rank_sharding(monkeypatch):
    import mmot.datasets.samplers.class_balanced_sampler as mod
    ds = LabelsOnly(IMB[:-3])  # 1109 samples, not divisible by 3
    world = 3
    shards = []
    for rank in range(world):
        monkeypatch.setattr(mod, 'get_dist_info', lambda r=rank: (r, world))
        s = ClassBalancedSampler(ds, seed=11)
        s.set_epoch(2)
        assert len(s) == math.ceil(len(ds) / world)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    monkeypatch.setattr(mod, 'get_dist_info', lambda: (0, 1))
    full = ClassBalancedSampler(ds, seed=11, num_samples=3 * len(shards[0]))
    full.set_epoch(2)
    glob = list(full)
    # rank r holds positions r, r + world, ... of the shared global sequence
    for rank in range(world):
        assert shards[rank] == glob[rank::world]
    assert shards[0] != shards[1]


def test_sampler_errors():
    with pytest.raises(ValueError, match='single-label'):
        ClassBalancedSampler(
            type('M', (LabelsOnly, ), {'get_cat_ids': lambda s, i: [0, 1]})(
                [0, 1]), seed=0)
    with pytest.raises(TypeError, match='get_cat_ids'):
        ClassBalancedSampler([1, 2, 3], seed=0)
