# Copyright (c) mmot contributors. All rights reserved.
"""Plot confusion matrices with the classes ordered by training frequency,
frequent (left / top) to rare (the OT re-weighting paper's Fig. 2).

The matrix is mmpretrain's ``ConfusionMatrix``: computed from the
predictions dumped by ``tools/test.py CONFIG CKPT --out results.pkl``
(``--pkl``, several files = several panels, e.g. CE / ours), or by running
the test set of ``--config`` with ``--checkpoint`` and the ``ConfusionMatrix``
metric. Rows are normalised to per-class recall (%) unless ``--counts``.

The training class counts come from ``--class-counts`` (a comma list, a JSON
list or an ``ot_class_weights.json``), else from ``--config`` (the
``class_counts`` of its LongTailMetric / PostHocMetric, else its training
set).

Examples::

    python tools/test.py CONFIG ce.pth --out ce.pkl
    python tools/test.py CONFIG ot.pth --out ot.pkl
    python tools/analysis/plot_confusion.py --pkl ce.pkl ot.pkl \\
        --titles CE OT --config CONFIG --out fig2.png
    python tools/analysis/plot_confusion.py --config CONFIG --checkpoint \\
        ot.pth --out confusion.png
"""
import argparse
import json
import os.path as osp

import mmot  # noqa: F401  (registrations, checkpoint allowlist)
import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Confusion matrices, classes ordered by training '
        'frequency (Fig. 2)')
    parser.add_argument('--pkl', nargs='+',
                        help='predictions dumped by tools/test.py --out')
    parser.add_argument('--config', help='config (class counts and names; '
                        'with --checkpoint: run its test set)')
    parser.add_argument('--checkpoint', help='checkpoint to test')
    parser.add_argument(
        '--class-counts',
        help='training images per class: "n0,n1,..." or a JSON file (a '
        'list, or a dict with "class_counts")')
    parser.add_argument('--titles', nargs='+', help='one title per panel')
    parser.add_argument('--counts', action='store_true',
                        help='draw counts instead of row-normalised %%')
    parser.add_argument('--work-dir', default=None,
                        help='work_dir of the test run (--checkpoint)')
    parser.add_argument('--out', default='confusion.png', help='output PNG')
    args = parser.parse_args(argv)
    if bool(args.pkl) == bool(args.checkpoint):
        parser.error('give either --pkl or --config with --checkpoint')
    if args.checkpoint and not args.config:
        parser.error('--checkpoint needs --config')
    n = len(args.pkl) if args.pkl else 1
    if args.titles and len(args.titles) != n:
        parser.error(f'--titles needs {n} titles, got {len(args.titles)}')
    return args


def parse_counts(value):
    if value is None:
        return None
    if osp.isfile(value):
        with open(value) as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = data.get('class_counts')
        if not isinstance(data, list):
            raise ValueError(f'{value}: expected a list or a dict with '
                             '"class_counts"')
        return [int(n) for n in data]
    return [int(n) for n in value.split(',')]


def counts_from_config(cfg):
    """Training class counts of a config: its metric's ``class_counts`` or
    its training set's (``class_counts`` of LongTailDataset, else label
    histogram)."""
    for key in ('test_evaluator', 'val_evaluator'):
        metrics = cfg.get(key, None) or []
        if isinstance(metrics, dict):
            metrics = [metrics]
        for m in metrics:
            if m.get('class_counts') is not None:
                return [int(n) for n in m['class_counts']]
    from mmot.datasets.long_tail_dataset import (build_training_dataset,
                                                 training_labels)
    return training_labels(build_training_dataset(
        cfg.train_dataloader.dataset,
        cfg.get('default_scope', 'mmpretrain')))[1].tolist()


def matrix_from_pkl(path, num_classes=None):
    """mmpretrain's confusion matrix of dumped predictions (``num_classes``
    is needed only when they hold no ``pred_score``)."""
    import torch
    from mmengine.fileio import load

    from mmpretrain.evaluation import ConfusionMatrix
    results = load(path)
    if not isinstance(results, list) or not results or 'gt_label' not in \
            results[0]:
        raise ValueError(f'{path}: expected the list of data samples written '
                         'by tools/test.py --out (with gt_label)')
    gt = torch.cat([torch.as_tensor(r['gt_label']).view(-1)[:1]
                    for r in results])
    if all('pred_score' in r for r in results):
        pred = torch.stack([torch.as_tensor(r['pred_score'])
                            for r in results])
        num_classes = pred.shape[1]
    else:
        pred = torch.cat([torch.as_tensor(r['pred_label']).view(-1)[:1]
                          for r in results])
    if num_classes is None:
        raise ValueError(f'{path} has no pred_score: give --class-counts or '
                         '--config for the number of classes')
    return ConfusionMatrix.calculate(pred, gt, num_classes).numpy()


def matrix_from_checkpoint(cfg, checkpoint, work_dir):
    """Run the config's test set with mmpretrain's ConfusionMatrix."""
    from mmengine.runner import Runner
    cfg = cfg.copy()
    cfg.load_from = checkpoint
    cfg.test_evaluator = dict(type='ConfusionMatrix')
    cfg.work_dir = work_dir or osp.join('work_dirs', 'confusion_matrix')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    classes = runner.test_dataloader.dataset.metainfo.get('classes')
    return metrics['confusion_matrix/result'].numpy(), classes


def order_by_frequency(counts, num_classes):
    if counts is None:
        print('no training class counts (--class-counts / --config): '
              'classes are drawn in index order')
        return np.arange(num_classes)
    if len(counts) != num_classes:
        raise ValueError(f'{len(counts)} class counts for a '
                         f'{num_classes}-class confusion matrix')
    return np.argsort(-np.asarray(counts), kind='stable')


def plot(panels, order, counts, out, classes=None, normalize=True):
    """``panels``: list of (title, K x K matrix, rows = true class)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    k = len(order)
    n = len(panels)
    size = 4.8 if k <= 20 else 6.5
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.6, size + 0.6),
                             squeeze=False)
    for ax, (title, mat) in zip(axes[0], panels):
        m = mat[np.ix_(order, order)].astype(float)
        if normalize:
            m = 100 * m / np.clip(m.sum(1, keepdims=True), 1, None)
        im = ax.imshow(m, cmap='Blues', vmin=0,
                       vmax=100 if normalize else None,
                       interpolation='nearest')
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03,
                     label='% of the true class' if normalize else 'images')
        acc = np.trace(mat) / max(mat.sum(), 1) * 100
        recall = np.diag(mat) / np.clip(mat.sum(1), 1, None)
        ax.set_title(f'{title}\ntop-1 {acc:.2f}%, mean recall '
                     f'{recall[mat.sum(1) > 0].mean() * 100:.2f}%',
                     fontsize=10)
        if k <= 30:
            names = [classes[i] if classes else str(i) for i in order]
            if counts is not None:
                names = [f'{nm} ({counts[i]})' for nm, i in zip(names, order)]
            ax.set_xticks(range(k))
            ax.set_yticks(range(k))
            ax.set_xticklabels(names, rotation=60, ha='right', fontsize=8)
            ax.set_yticklabels(names, fontsize=8)
            if k <= 20:
                for i in range(k):
                    for j in range(k):
                        if m[i, j] >= (0.5 if normalize else 1):
                            ax.text(j, i, f'{m[i, j]:.0f}', ha='center',
                                    va='center', fontsize=7,
                                    color='white' if m[i, j] > (
                                        50 if normalize else m.max() / 2)
                                    else 'black')
        ax.set_xlabel('predicted class (frequent -> rare)')
        ax.set_ylabel('true class (frequent -> rare)')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv=None):
    args = parse_args(argv)
    cfg = None
    if args.config:
        from mmengine.config import Config
        cfg = Config.fromfile(args.config)
    counts = parse_counts(args.class_counts)
    if counts is None and cfg is not None:
        counts = counts_from_config(cfg)
    classes = None
    if args.pkl:
        num_classes = len(counts) if counts is not None else None
        mats = [matrix_from_pkl(p, num_classes) for p in args.pkl]
        names = args.titles or [osp.basename(p) for p in args.pkl]
    else:
        mat, classes = matrix_from_checkpoint(cfg, args.checkpoint,
                                              args.work_dir)
        mats = [mat]
        names = args.titles or [osp.basename(args.checkpoint)]
    order = order_by_frequency(counts, mats[0].shape[0])
    out = plot(list(zip(names, mats)), order, counts, args.out, classes,
               normalize=not args.counts)
    print(f'saved {out}')
    return out


if __name__ == '__main__':
    main()
