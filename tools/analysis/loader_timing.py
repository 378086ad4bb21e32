# Copyright (c) mmot contributors. All rights reserved.
"""Time a config's training loader with and without the images.

A cached stage 2 (FeatureCacheHook) trains the head on cached features, so
its loader reads each batch's labels without the images
(:func:`~mmot.engine.hooks.feature_cache_hook.without_images`). This times
200 batches of the full loader (decode, augment, pack) and of that loader,
interleaved ``--repeats`` times on the same sampler, and prints the median
per batch::

    python tools/analysis/loader_timing.py \\
        configs/benchmarks/cifar100-lt-if100/resnet32_1xb16_cifar100-lt-if100_ce-drw.py
"""
import argparse
import time

import mmot  # noqa: F401
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mmpretrain.registry import MODELS

from mmot.engine.hooks.feature_cache_hook import without_images


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--batches', type=int, default=200)
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args(argv)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(args.config)
    full = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    view = without_images(full.dataset, MODELS.build(dict(
        dict(type='ClsDataPreprocessor'), **cfg.data_preprocessor)))
    if view is None:
        raise SystemExit(f'{args.config}: its training pipeline does not end '
                         'in PackInputs: the cached loader would load images')
    fast = DataLoader(view, batch_size=full.batch_size, sampler=full.sampler,
                      collate_fn=full.collate_fn)
    times = {'full pipeline': [], 'without images': []}
    for _ in range(args.repeats):
        for name, loader in zip(times, (full, fast)):
            it = iter(loader)
            t = time.perf_counter()
            for _ in range(args.batches):
                next(it)
            times[name].append((time.perf_counter() - t) / args.batches)
    for name, ts in times.items():
        ts = sorted(1e3 * t for t in ts)
        print(f'{name}: median {ts[len(ts) // 2]:.2f} ms per batch of '
              f'{full.batch_size} (min {ts[0]:.2f}, max {ts[-1]:.2f})')


if __name__ == '__main__':
    main()
