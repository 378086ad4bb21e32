"""FeatureCacheHook / FeatureCache: a decoupled stage 2 on cached backbone
outputs computes what the uncached frozen-backbone run computes."""
import os
import random

import numpy as np
import pytest
import torch

from _runner_utils import build, demo_cfg, ot_model
from mmot.models.classifiers.feature_cache import FeatureCache


def _run(tmp_path, cache, augment=False, hook=dict(), **ot):
    cfg = demo_cfg(tmp_path, max_epochs=4, start_epoch=2, **ot)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    if not augment:
        # a deterministic pipeline: one cached view is then the exact input
        cfg.train_dataloader.dataset.dataset.pipeline = [
            dict(type='PackInputs')]
    if cache:
        cfg.custom_hooks = [dict(dict(type='FeatureCacheHook', views=1,
                                      start_epoch=2), **hook)]
    runner = build(cfg)
    runner.train()
    return runner


def test_cached_stage2_equals_uncached(tmp_path):
    ref = _run(tmp_path / 'ref', cache=False)
    got = _run(tmp_path / 'cache', cache=True)
    model = ot_model(got)
    assert model.feature_cache is not None
    assert int(model.feature_cache.filled.sum()) == len(
        got.train_dataloader.dataset)
    w_ref = ot_model(ref).reweighter.learner.weights.detach()
    w = model.reweighter.learner.weights.detach()
    assert not torch.equal(w_ref, torch.ones_like(w_ref))  # OT stepped
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.head.fc.weight,
                               ot_model(ref).head.fc.weight, rtol=0,
                               atol=1e-5)


def test_cached_loader_without_images_trains_the_same(tmp_path):
    # the speed path (a loader of the same batches without the images)
    # against the cached run that still loads and augments them: the
    # augmentations draw from the global random streams, which nothing
    # else of a cached stage 2 reads
    ref = _run(tmp_path / 'ref', cache=True, augment=True,
               hook=dict(views=2, load_images=True))
    got = _run(tmp_path / 'fast', cache=True, augment=True,
               hook=dict(views=2))
    assert type(ref.train_dataloader.dataset).__name__ == 'LongTailDataset'
    assert type(got.train_dataloader.dataset).__name__ == 'WithoutImages'
    assert len(got.train_dataloader) == len(ref.train_dataloader)
    a, b = ot_model(ref), ot_model(got)
    assert not torch.equal(a.reweighter.learner.weights,
                           torch.ones_like(a.reweighter.learner.weights))
    assert torch.equal(a.reweighter.learner.weights,
                       b.reweighter.learner.weights)
    assert torch.equal(a.head.fc.weight, b.head.fc.weight)
    assert torch.equal(a.head.fc.bias, b.head.fc.bias)


def test_cache_refuses_batch_augments(tmp_path):
    cfg = demo_cfg(tmp_path, max_epochs=2, start_epoch=1)
    cfg.model.data_preprocessor = dict(
        num_classes=10, mean=[64.0], std=[90.0], to_rgb=False,
        batch_augments=dict(augments=dict(type='Mixup', alpha=0.2)))
    cfg.custom_hooks = [dict(type='FeatureCacheHook', start_epoch=1)]
    with pytest.raises(ValueError, match='batch_augments'):
        build(cfg).train()


def test_cache_refuses_a_trained_backbone(tmp_path):
    with pytest.raises(ValueError, match='must be frozen in eval mode'):
        _run(tmp_path, cache=True, freeze_backbone=False)


def test_cache_refuses_batchnorm_in_train_mode(tmp_path):
    # frozen weights but BatchNorm in train mode (the authors' stage 2):
    # the backbone's outputs depend on the batch, a cache would differ
    with pytest.raises(ValueError, match='must be frozen in eval mode'):
        _run(tmp_path, cache=True, freeze_backbone=True, freeze_mode='train')


def test_cache_fill_keeps_the_global_random_stream():
    def extract(batch):  # draws from every global RNG, like augmentations
        random.random()
        np.random.rand()
        x = torch.rand(len(batch), 3)
        return torch.as_tensor(batch), (x, )

    loader = [[0, 1], [2, 3]]
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    cache = FeatureCache(views=2, seed=3)
    cache.fill(extract, loader, num_samples=5)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
    # two seeded views of the 4 filled samples; sample 4 was never seen
    assert cache.feats[0].shape == (5, 2, 3)
    assert not torch.equal(cache.feats[0][:4, 0], cache.feats[0][:4, 1])
    again = FeatureCache(views=2, seed=3)
    again.fill(extract, loader, num_samples=5)
    assert torch.equal(again.feats[0], cache.feats[0])  # seeded: refills
    cache.set_epoch(3)
    (x, ) = cache.lookup(torch.tensor([2, 0]))
    assert torch.equal(x, cache.feats[0][[2, 0], 1])
    with pytest.raises(KeyError, match='sample_idx'):
        cache.lookup(torch.tensor([4]))
    with pytest.raises(ValueError, match='views must be an int >= 1'):
        FeatureCache(views=0)


def test_cache_file_is_shared_by_runs_of_the_same_network(tmp_path):
    """``file``: the second run reads the first run's cache (same frozen
    network, data and seed) and trains the same; another seed refills."""
    path = str(tmp_path / 'feats.pth')

    def run(name, seed=0):
        cfg = demo_cfg(tmp_path / name, max_epochs=4, start_epoch=2)
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                            interval=100)
        cfg.custom_hooks = [dict(type='FeatureCacheHook', views=2,
                                 start_epoch=2, seed=seed, file=path)]
        runner = build(cfg)
        runner.train()
        hook = [h for h in runner.hooks
                if type(h).__name__ == 'FeatureCacheHook'][0]
        return runner, hook

    first, _ = run('first')
    stamp = os.stat(path).st_mtime_ns
    again, hook = run('again')
    assert os.stat(path).st_mtime_ns == stamp  # read, not written
    assert torch.equal(hook.cache.feats[0],
                       ot_model(first).feature_cache.feats[0])
    torch.testing.assert_close(ot_model(again).head.fc.weight,
                               ot_model(first).head.fc.weight, rtol=0,
                               atol=1e-6)
    other, hook = run('other', seed=1)  # other augmentations: refilled
    assert os.stat(path).st_mtime_ns != stamp
    assert not torch.equal(hook.cache.feats[0],
                           ot_model(first).feature_cache.feats[0])
    key = hook.cache.fingerprint([ot_model(other).backbone], 3)
    assert not FeatureCache(views=2, seed=1).load(path, key)  # other key
    with pytest.raises(ValueError, match='file must be a path'):
        from mmot.engine.hooks.feature_cache_hook import FeatureCacheHook
        FeatureCacheHook(file='')
