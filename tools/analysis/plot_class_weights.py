# Copyright (c) mmot contributors. All rights reserved.
"""Plot the class-mean learned OT weight against the class size (the OT
re-weighting paper's Fig. 3).

Inputs (one panel each, e.g. runs with different imbalance factors):

* a work_dir of a run with ``OTReweightHook`` or its
  ``ot_class_weights.json``: the mean relative batch weight ``B * a_i``
  (1 = uniform) of each class over each stage-2 epoch, with the training
  class counts;
* a checkpoint (``.pth``) of such a run together with ``--config``: the
  stored weight vector (the state-dict entries ``reweighter.learner.*``) averaged over the
  training images of each class (labels from the config's training set),
  relative to its mean over the training set; the printout adds how each
  class's weight is spread over its images (effective number of images,
  the top image's share, the largest loss weight ``N a_i``).

Examples::

    python tools/analysis/plot_class_weights.py work_dirs/run_if200 \\
        work_dirs/run_if100 --titles IF=200 IF=100 --out fig3.png
    python tools/analysis/plot_class_weights.py work_dirs/run/epoch_240.pth \\
        --config configs/ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot.py
"""
import argparse
import json
import os.path as osp

import mmot  # noqa: F401  (registrations, checkpoint allowlist)
import numpy as np

WEIGHTS_FILE = 'ot_class_weights.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Class-mean learned OT weight vs class size (Fig. 3)')
    parser.add_argument(
        'inputs', nargs='+',
        help='work_dirs, ot_class_weights.json files or checkpoints')
    parser.add_argument(
        '--config', help='config of the checkpoints (for the labels)')
    parser.add_argument(
        '--epochs', default='last',
        help="epochs of the json to draw: 'last', 'all' or a comma list "
        '(0-based, as logged). Defaults to last')
    parser.add_argument(
        '--parametrization', choices=['normalize', 'softmax'],
        help="how the checkpoint's weight vector makes the batch measure; "
        "default: the config's model.reweighter.learner (else 'normalize')")
    parser.add_argument('--titles', nargs='+', help='one title per input')
    parser.add_argument(
        '--out', default='class_weights.png', help='output PNG')
    args = parser.parse_args(argv)
    if args.titles and len(args.titles) != len(args.inputs):
        parser.error(f'--titles needs {len(args.inputs)} titles, got '
                     f'{len(args.titles)}')
    return args


def read_json(path, epochs='last'):
    """Curves from an ``ot_class_weights.json``.

    Returns:
        tuple: (class counts or None, list of (label, weights)).
    """
    if osp.isdir(path):
        path = osp.join(path, WEIGHTS_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: OTReweightHook writes it to the work_dir '
            'after every stage-2 epoch (save_class_weights=True)')
    with open(path) as f:
        data = json.load(f)
    logged = data.get('epochs') or []
    if not logged:
        raise ValueError(f'{path} holds no epoch (stage 2 never ran?)')
    if epochs == 'last':
        chosen = logged[-1:]
    elif epochs == 'all':
        chosen = logged
    else:
        wanted = {int(e) for e in str(epochs).split(',')}
        chosen = [e for e in logged if e['epoch'] in wanted]
        if not chosen:
            raise ValueError(f'--epochs {epochs}: {path} has epochs '
                             f'{[e["epoch"] for e in logged]}')
    curves = [(f'epoch {e["epoch"] + 1}',
               np.array([np.nan if v is None else v
                         for v in e['class_mean_weight']], dtype=float))
              for e in chosen]
    return data.get('class_counts'), curves


def class_mass(counts, weights):
    """Each class's share of the training weight, ``n_c w_c / sum n w``
    (plain CE: the class frequencies; class balance: 1/K each); a class
    without a logged weight counts as 0."""
    n = np.asarray(counts, dtype=np.float64)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)
    return n * w / np.sum(n * w)


def _learner_cfg(cfg):
    """The config's weight learner (OTImageClassifier's re-weighter)."""
    return ((cfg.get('model') or {}).get('reweighter') or {}).get(
        'learner') or {}


def train_labels(cfg):
    """(labels of the wrapped dataset with -1 for non-training samples,
    class counts) of the config's training set (mmot's
    ``training_labels``)."""
    from mmot.datasets.long_tail_dataset import (build_training_dataset,
                                                 training_labels)
    labels, counts = training_labels(build_training_dataset(
        cfg.train_dataloader.dataset, cfg.get('default_scope',
                                              'mmpretrain')))
    return labels.numpy(), counts.tolist()


def _train_weights(weights, labels, parametrization):
    """The training images' loss weights ``N a_i`` a weight vector gives
    (mean 1 over the training set) and their labels."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) != len(labels):
        raise ValueError(
            f'the checkpoint has {len(weights)} weights but the config\'s '
            f'training source has {len(labels)} samples: wrong --config?')
    train = labels >= 0
    w = weights[train]
    if parametrization == 'softmax':
        w = np.exp(w - w.max())
    else:
        w = np.clip(w, 0, None)
    return w / w.mean(), labels[train]


def checkpoint_curve(weights, labels, parametrization, num_classes):
    """Class means of the measure a weight vector gives, relative to the
    mean over the training set (1 = the uniform weight)."""
    w, y = _train_weights(weights, labels, parametrization)
    sums = np.bincount(y, weights=w, minlength=num_classes)
    counts = np.bincount(y, minlength=num_classes)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(counts > 0, sums / counts, np.nan)


def within_class_concentration(weights, labels, parametrization,
                               num_classes):
    """How a class's weight is spread over its images.

    Returns:
        dict: per class (NaN for a class without weight) ``effective``, the
        effective number of images ``(sum w)^2 / sum w^2`` (n_c when
        uniform, 1 when one image holds it all); ``top_share``, the share
        of the class's weight its heaviest image holds; ``max_weight``,
        the largest loss weight ``N a_i`` in the class (1 = uniform).
    """
    w, y = _train_weights(weights, labels, parametrization)
    out = {k: np.full(num_classes, np.nan)
           for k in ('effective', 'top_share', 'max_weight')}
    for c in range(num_classes):
        wc = w[y == c]
        total = wc.sum()
        if total <= 0:
            continue
        out['effective'][c] = total**2 / np.sum(wc**2)
        out['top_share'][c] = wc.max() / total
        out['max_weight'][c] = wc.max()
    return out


def read_checkpoint(path, cfg, parametrization=None):
    import torch

    ckpt = torch.load(path, map_location='cpu')
    from mmot.models.classifiers.ot_image_classifier import legacy_state
    sd = dict(ckpt.get('state_dict') or {})
    if '_extra_state' in sd:  # written by an earlier mmot
        sd.update(legacy_state(sd.pop('_extra_state')))
    pre = 'reweighter.learner.'
    params = {k[len(pre):]: v for k, v in sd.items() if k.startswith(pre)}
    if not params:
        raise ValueError(f'{path} has no weight learner state (state_dict '
                         'reweighter.learner.*): not a stage-2 checkpoint '
                         'of an OTImageClassifier run')
    if 'weights' in params:  # WeightVector (per-batch measures)
        weights = params['weights'].numpy()
        if parametrization is None:
            parametrization = _learner_cfg(cfg).get('parametrization',
                                                    'normalize')
    elif 'w' in params:  # GlobalWeightVector: w is one measure over N
        if parametrization == 'softmax':
            raise ValueError(
                f'--parametrization softmax: {path} is a GlobalWeightVector '
                'checkpoint, whose w is the measure itself (normalize)')
        weights, parametrization = params['w'].numpy(), 'normalize'
    else:
        raise ValueError(
            f'{path}: the weight learner has no per-sample weight vector '
            f'(params {sorted(params)}); only WeightVector and '
            'GlobalWeightVector runs can be read from a checkpoint, use the '
            'work_dir json otherwise')
    labels, counts = train_labels(cfg)
    curve = checkpoint_curve(weights, labels, parametrization, len(counts))
    spread = within_class_concentration(weights, labels, parametrization,
                                        len(counts))
    epoch = ckpt.get('meta', {}).get('epoch')
    label = f'epoch {epoch}' if epoch is not None else osp.basename(path)
    return counts, [(label, curve)], spread


def plot(panels, out):
    """``panels``: list of (title, class counts or None, curves)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False)
    for ax, (title, counts, curves) in zip(axes[0], panels):
        k = len(curves[0][1])
        if counts is not None and len(counts) != k:
            raise ValueError(f'{title}: {len(counts)} class counts for {k} '
                             'weights')
        order = np.argsort(-np.asarray(counts), kind='stable') \
            if counts is not None else np.arange(k)
        x = np.arange(k)
        twin = ax
        if counts is not None:
            ax.bar(x, np.asarray(counts)[order], color='#c6d7ea',
                   edgecolor='#6a8fb8', label='training images')
            ax.set_ylabel('training images per class')
            twin = ax.twinx()
        colors = plt.cm.viridis(np.linspace(0.15, 0.85, len(curves)))
        for (label, w), c in zip(curves, colors):
            twin.plot(x, w[order], marker='o', ms=3 if k > 30 else 5,
                      color=c if len(curves) > 1 else '#c0392b',
                      label=f'mean weight ({label})')
        twin.axhline(1.0, color='grey', ls='--', lw=1)
        twin.set_ylabel('class-mean weight (1 = uniform)')
        if k <= 30:
            ax.set_xticks(x)
            ax.set_xticklabels([str(i) for i in order],
                               fontsize=8 if k > 12 else 10)
            ax.set_xlabel('class (sorted by training frequency)')
        else:
            ax.set_xlabel('classes sorted by training frequency')
        ax.set_title(title)
        handles = []
        for a in {ax, twin}:
            h, lab = a.get_legend_handles_labels()
            handles += list(zip(h, lab))
        if len(handles) <= 8:
            ax.legend([h for h, _ in handles], [lab for _, lab in handles],
                      loc='upper center', fontsize=8)
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
    panels = []
    for i, path in enumerate(args.inputs):
        if path.endswith(('.pth', '.pt')):
            if cfg is None:
                raise ValueError(f'{path}: a checkpoint needs --config (the '
                                 'labels of its training set)')
            counts, curves, spread = read_checkpoint(path, cfg,
                                                     args.parametrization)
        else:
            (counts, curves), spread = read_json(path, args.epochs), None
        title = args.titles[i] if args.titles else osp.basename(
            osp.normpath(path))
        panels.append((title, counts, curves))
        label, w = curves[-1]
        mass = class_mass(counts, w) if counts is not None else None
        print(f'{title} ({label}): class, training images, mean weight'
              + (', share of the training weight' if mass is not None
                 else '')
              + (', effective images, top image\'s share of the class, '
                 'largest weight' if spread is not None else ''))
        for k, v in enumerate(w):
            n = counts[k] if counts is not None else '-'
            print(f'  {k:>4} {n:>7} {v:8.4f}'
                  + (f' {mass[k]:7.3f}' if mass is not None else '')
                  + (f' {spread["effective"][k]:9.1f}'
                     f' {spread["top_share"][k]:6.3f}'
                     f' {spread["max_weight"][k]:9.1f}'
                     if spread is not None else ''))
    out = plot(panels, args.out)
    print(f'saved {out}')
    return out


if __name__ == '__main__':
    main()
