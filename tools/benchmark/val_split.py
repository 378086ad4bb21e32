# Copyright (c) mmot contributors. All rights reserved.
"""Carve a balanced validation split out of a class-folder training set, to
choose settings on it instead of on the test set.

Writes, in mmpretrain's ``ann_file`` format (``<class>/<file> <label>``,
relative to ``DATA_ROOT/train``):

* ``OUT/val_split.txt``: ``--per-class`` images of every class (seeded);
* ``OUT/train_minus_val.txt``: the rest, from which ``LongTailDataset`` then
  holds out the meta set and cuts the long tail as usual;
* ``OUT/options.txt``: the ``--cfg-options`` that make a benchmark config
  train on the rest and test on the split (``launch.py --options``).

The split is the one ``tools/benchmark.py --eval-split val`` drew (seed
2022, the same draw per class), so the committed tuning
(docs/benchmarks/tuning-val-if100-seed0) is reproducible with it.

Example::

    python tools/benchmark/val_split.py data/cifar10-jpg --per-class 100 \\
        --out work_dirs/val100
    python tools/benchmark/launch.py configs/benchmarks/cifar10-lt-if100-jpeg-quick/benchmark.yml \\
        --out work_dirs/tune --seeds 0 --options $(cat work_dirs/val100/options.txt)
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np


def draw(labels, per_class: int, seed: int = 2022) -> np.ndarray:
    """Boolean mask of the validation images: ``per_class`` of every class,
    drawn without replacement, class by class, from one seeded generator."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for k in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 * per_class:
            raise ValueError(f'--per-class {per_class}: class {k} has only '
                             f'{len(idx)} training images (need twice as '
                             'many, the rest is trained on)')
        is_val[rng.choice(idx, per_class, replace=False)] = True
    return is_val


def write_split(data_root: str, per_class: int, out: str,
                seed: int = 2022) -> dict:
    """Write the two lists and the options; returns their paths."""
    from mmpretrain.datasets import CustomDataset
    source = CustomDataset(data_root=data_root, data_prefix='train',
                           lazy_init=False)
    labels = [source.get_data_info(i)['gt_label'] for i in range(len(source))]
    is_val = draw(labels, per_class, seed)
    prefix = osp.join(osp.abspath(data_root), 'train') + os.sep
    os.makedirs(out, exist_ok=True)
    paths = {}
    for name, keep in (('val_split', is_val), ('train_minus_val', ~is_val)):
        lines = []
        for i in np.flatnonzero(keep):
            img = osp.abspath(source.get_data_info(int(i))['img_path'])
            lines.append(f'{img[len(prefix):]} {labels[i]}')
        paths[name] = osp.abspath(osp.join(out, name + '.txt'))
        with open(paths[name], 'w') as f:
            f.write('\n'.join(lines) + '\n')
    classes = '[' + ','.join(source.metainfo['classes']) + ']'
    options = [
        f'train_dataloader.dataset.dataset.ann_file={paths["train_minus_val"]}',
        f'train_dataloader.dataset.dataset.metainfo.classes={classes}',
        f'test_dataloader.dataset.ann_file={paths["val_split"]}',
        'test_dataloader.dataset.data_prefix=train',
        f'test_dataloader.dataset.metainfo.classes={classes}',
    ]
    paths['options'] = osp.abspath(osp.join(out, 'options.txt'))
    with open(paths['options'], 'w') as f:
        f.write('\n'.join(options) + '\n')
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data_root', help='folder with train/<class>/ images')
    p.add_argument('--per-class', type=int, default=100)
    p.add_argument('--seed', type=int, default=2022)
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    paths = write_split(args.data_root, args.per_class, args.out, args.seed)
    print('\n'.join(f'{k}: {v}' for k, v in paths.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
