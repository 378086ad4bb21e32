# Copyright (c) mmot contributors. All rights reserved.
"""Plot a batch's cost matrix, transport plan and learned weights for the
label-aware, feature-aware and combined costs (the OT re-weighting paper's
appendix Fig. 5 / main Fig. 1).

The batch has {10, 9, ..., 1} samples of the first 10 classes (55 samples)
and Q is uniform over the class prototypes of a balanced meta set (10 per
class). Starting from uniform batch weights, ``--steps`` updates of a weight
vector on the OT loss (``OTReweighter`` of mmot) give the learned weights;
the plan is the entropic OT plan between the batch measure and Q.

Features: synthetic (class centres on the sphere plus noise, the paper's toy)
by default, or with ``--config`` and ``--checkpoint`` the classifier-input
features of real training and meta images of a LongTailDataset config.

Examples::

    python tools/analysis/plot_transport.py --out fig5.png
    python tools/analysis/plot_transport.py --out fig5_real.png \\
        --config configs/ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot.py \\
        --checkpoint work_dirs/resnet32_1xb16_cifar10-lt-if100_ot/epoch_200.pth
"""
import argparse
import os.path as osp

import mmot  # noqa: F401  (registrations, checkpoint allowlist)
import numpy as np

COSTS = ('feature', 'label', 'combined')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Cost matrix, transport plan and learned weights of a '
        'batch for the three OT costs (Fig. 5)')
    parser.add_argument('--config', help='config (with --checkpoint)')
    parser.add_argument('--checkpoint', help='checkpoint (with --config)')
    parser.add_argument(
        '--costs', nargs='+', choices=COSTS, default=list(COSTS),
        help='costs to draw (one column each)')
    parser.add_argument(
        '--num-classes', type=int, default=10,
        help='classes in the batch: class k (by training frequency) has '
        'num_classes - k samples. Defaults to 10 (55 samples)')
    parser.add_argument('--steps', type=int, default=200,
                        help='weight updates. Defaults to 200')
    parser.add_argument('--lr', type=float, default=1.0,
                        help='step size beta of the weight vector (softmax '
                        'scores). Defaults to 1.0')
    parser.add_argument('--reg', type=float, default=0.1,
                        help='entropic regulariser lambda. Defaults to 0.1')
    parser.add_argument('--dim', type=int, default=16,
                        help='feature dimension of the synthetic toy')
    parser.add_argument('--noise', type=float, default=0.6,
                        help='feature noise of the synthetic toy')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='transport.png', help='output PNG')
    args = parser.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        parser.error('--config and --checkpoint go together')
    if args.num_classes < 2 or args.steps < 0:
        parser.error('--num-classes must be >= 2 and --steps >= 0')
    return args


def toy_features(num_classes=10, dim=16, noise=0.6, seed=0, meta_per_class=10):
    """The paper's toy: {K, K-1, ..., 1} samples of classes 0..K-1 and a
    balanced meta set, features = class centre + Gaussian noise."""
    import torch
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(
        torch.randn(num_classes, dim, generator=g), dim=1)
    y = torch.cat([torch.full((num_classes - k, ), k)
                   for k in range(num_classes)])
    z = centers[y] + noise * torch.randn(len(y), dim, generator=g)
    meta_y = torch.arange(num_classes).repeat_interleave(meta_per_class)
    meta_z = centers[meta_y] + noise * torch.randn(
        len(meta_y), dim, generator=g)
    return z, y, meta_z, meta_y


def real_features(config, checkpoint, num_classes=10, seed=0):
    """Features of a batch built like the toy from the config's training set
    (the ``num_classes`` most frequent classes, ``num_classes - k`` images
    of the k-th) and of the meta set of those classes, with the model of
    ``checkpoint``. Labels are re-numbered 0..num_classes-1 by frequency."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from mmot.datasets.long_tail_dataset import unwrap_dataset
    from mmpretrain.registry import DATASETS, MODELS

    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        model = MODELS.build(cfg.model)
        load_checkpoint(model, checkpoint, map_location='cpu')
        model.eval()
        lt = unwrap_dataset(DATASETS.build(cfg.train_dataloader.dataset))
        if not hasattr(lt, 'get_meta_dataset'):
            raise ValueError('the training set of the config is not a '
                             'LongTailDataset (no meta set)')
        counts = np.asarray(lt.class_counts)
        if num_classes > len(counts):
            raise ValueError(f'--num-classes {num_classes} > the '
                             f'{len(counts)} classes of the dataset')
        classes = np.argsort(-counts, kind='stable')[:num_classes]
        rng = np.random.default_rng(seed)
        train_labels = lt.get_gt_labels()
        picks, y = [], []
        for rank, c in enumerate(classes):
            idx = np.flatnonzero(train_labels == c)
            n = min(num_classes - rank, len(idx))
            picks += [int(i) for i in rng.permutation(idx)[:n]]
            y += [rank] * n
        meta = lt.get_meta_dataset()
        meta_pos = [i for i, c in enumerate(lt.meta_labels) if c in classes]
        rank_of = {int(c): r for r, c in enumerate(classes)}
        meta_y = [rank_of[int(lt.meta_labels[i])] for i in meta_pos]

        # training images read with the meta (test) pipeline: no augmentation
        from mmot.datasets.long_tail_dataset import MetaSubset
        source = lt.dataset
        batch = MetaSubset(source, [int(lt.train_indices[i]) for i in picks],
                           lt.meta_pipeline)

        @torch.no_grad()
        def feats(items):
            data = model.data_preprocessor(pseudo_collate(items), False)
            return model.extract_feat(data['inputs'], stage='pre_logits')

        z = feats([batch[i] for i in range(len(batch))])
        meta_z = feats([meta[i] for i in meta_pos])
    return (z.float(), torch.tensor(y), meta_z.float(), torch.tensor(meta_y))


def make_cost(name):
    from mmot.models.costs import CombinedCost, FeatureCost, LabelCost
    return {'label': lambda: LabelCost(mode='01'),
            'feature': lambda: FeatureCost(metric='cosine'),
            'combined': lambda: CombinedCost()}[name]()


def fit(cost_name, z, y, meta_z, meta_y, num_classes, steps=200, lr=1.0,
        reg=0.1):
    """Learn the batch weights for one cost with ``OTReweighter``.

    Returns:
        dict: ``cost`` (B, K), ``plan0``/``plan`` (B, K) for the uniform /
        learned weights, ``w0``/``w`` (B,), ``ot0``/``ot`` (OT losses).
    """
    import torch

    from mmot.models.weight_learners import WeightVector
    from mmot.ot import sinkhorn_log
    from mmot.ot.reweighter import OTReweighter

    cost = make_cost(cost_name)
    learner = WeightVector(lr=lr, momentum=0.9, parametrization='softmax')
    learner.build(len(y), y, torch.bincount(y, minlength=num_classes),
                  z.shape[1])
    rw = OTReweighter(learner, cost, num_classes, reg=reg,
                      meta_mode='prototype')
    rw.set_meta(meta_z, meta_y)
    zq, yq = rw.support()
    with torch.no_grad():
        cmat = cost(z, y, zq, yq, num_classes).double()
    b = torch.full((cmat.shape[1], ), 1.0 / cmat.shape[1],
                   dtype=torch.float64)
    w0 = torch.full((len(y), ), 1.0 / len(y), dtype=torch.float64)
    idx = torch.arange(len(y))
    w = w0
    for _ in range(steps):
        w, _ = rw(z, y, idx)
    w = w.double()
    with torch.no_grad():  # the plans drawn: solved to convergence
        r0 = sinkhorn_log(w0, b, cmat, reg, max_iter=10000, tol=1e-9)
        r1 = sinkhorn_log(w / w.sum(), b, cmat, reg, max_iter=10000,
                          tol=1e-9)
    return dict(cost=cmat.numpy(), plan0=r0.plan.numpy(),
                plan=r1.plan.numpy(), w0=w0.numpy(), w=w.numpy(),
                ot0=float((r0.plan * cmat).sum()),
                ot=float((r1.plan * cmat).sum()))


def plot(results, y, out, title=None):
    """One column per cost: cost matrix, plan with uniform weights, plan with
    the learned weights, and the weights (bars, coloured by class)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    y = np.asarray(y)
    n = len(results)
    num_classes = int(y.max()) + 1
    fig, axes = plt.subplots(4, n, figsize=(4.6 * n, 15), squeeze=False,
                             gridspec_kw=dict(height_ratios=[3, 3, 3, 1.6]))
    bounds = np.flatnonzero(np.diff(y)) + 0.5
    mids = [np.flatnonzero(y == k).mean() for k in range(num_classes)]
    colors = plt.cm.tab10(np.arange(num_classes) % 10)
    for col, (name, r) in enumerate(results.items()):
        rows = [('cost matrix C', r['cost'], 'magma_r'),
                (f'plan, uniform weights (OT = {r["ot0"]:.3f})', r['plan0'],
                 'Blues'),
                (f'plan, learned weights (OT = {r["ot"]:.3f})', r['plan'],
                 'Blues')]
        for row, (label, mat, cmap) in enumerate(rows):
            ax = axes[row][col]
            im = ax.imshow(mat, aspect='auto', cmap=cmap,
                           interpolation='nearest')
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            ax.set_title(f'{name} cost: {label}', fontsize=10)
            for b in bounds:
                ax.axhline(b, color='white' if row else 'grey', lw=0.6)
            ax.set_yticks(mids)
            ax.set_yticklabels([f'class {k}' for k in range(num_classes)],
                               fontsize=7)
            ax.set_xticks(range(mat.shape[1]))
            ax.set_xticklabels(range(mat.shape[1]), fontsize=7)
            ax.set_xlabel('meta prototype (class)', fontsize=8)
        ax = axes[3][col]
        ax.bar(np.arange(len(y)), r['w'], color=colors[y], width=0.9)
        ax.axhline(1.0 / len(y), color='black', ls='--', lw=1,
                   label=f'uniform 1/{len(y)}')
        ax.set_title(f'{name} cost: learned batch weights', fontsize=10)
        ax.set_xlabel('batch sample (grouped by class, frequent first)',
                      fontsize=8)
        ax.set_xlim(-1, len(y))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.98) if title else None)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.config:
        z, y, meta_z, meta_y = real_features(args.config, args.checkpoint,
                                             args.num_classes, args.seed)
        title = f'{osp.basename(args.checkpoint)}: batch of {len(y)}'
    else:
        z, y, meta_z, meta_y = toy_features(args.num_classes, args.dim,
                                            args.noise, args.seed)
        title = f'synthetic toy batch of {len(y)} samples'
    results = {}
    for name in args.costs:
        results[name] = fit(name, z, y, meta_z, meta_y, args.num_classes,
                            args.steps, args.lr, args.reg)
        w = results[name]['w']
        means = [w[y.numpy() == k].mean() for k in range(args.num_classes)]
        print(f'{name}: OT {results[name]["ot0"]:.4f} -> '
              f'{results[name]["ot"]:.4f}; class-mean weight x B: '
              + ' '.join(f'{m * len(y):.2f}' for m in means))
    out = plot(results, y.numpy(), args.out, title)
    print(f'saved {out}')
    return out


if __name__ == '__main__':
    main()
