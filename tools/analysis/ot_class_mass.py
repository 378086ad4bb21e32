# Copyright (c) mmot contributors. All rights reserved.
"""How much training mass OT re-weighting gives each class, without a model.

With the label cost only, the OT weights depend on the labels of the batches
alone, so the weight learner can be run on the label sequence of a
long-tailed training set (random batches, as a shuffled sampler draws them)
in seconds. This prints, per class, the mean relative batch weight
``B * a_i`` (1 = uniform) and the class's share of the total weight
(``class mass``: 1/K for every class would be class-balanced training, the
class frequency is plain CE). It shows what the batch size, beta, the
number of epochs, the initialisation and the learner (kept weight vector vs
weights re-estimated from scratch per batch) do to the class balance that
the OT weights can reach (docs/benchmarks/README.md, "Why").

It also prints, per batch size, the **batch-presence bound**: the share of
batches that hold at least one image of each class. The batch measure P(w)
sums to 1 in every batch, so a class can never get more of the total
training mass than that share, whatever the weights (at batch 16 on
CIFAR-10-LT, IF 100, the rarest class is in 6 % of the batches: it can get
at most 6 % of the mass, class-balanced training gives it 10 %).

The ``global`` learner (:class:`GlobalWeightVector`, P(w) over the whole
training set, a global OT step every ``--global-interval`` batches) is not
bound by the batch presence: its rows also give the class mass of w itself
(``global class mass``), which reaches class balance.

Example (CIFAR-10-LT, IF 100, the benchmark's stage 2)::

    python tools/analysis/ot_class_mass.py --imbalance-factor 100 \\
        --batch-size 16 --epochs 2 --beta 1 1000 --learner vector scratch \\
        global
"""
import argparse
import json
import os.path as osp
import sys

import torch

try:
    import mmot  # noqa: F401
except ImportError:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))

from mmot.datasets.long_tail_dataset import long_tail_counts  # noqa: E402
from mmot.models.costs import LabelCost  # noqa: E402
from mmot.models.weight_learners import (GlobalWeightVector,  # noqa: E402
                                         ScratchWeights, WeightVector)
from mmot.ot.reweighter import OTReweighter  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--num-classes', type=int, default=10)
    p.add_argument('--n-max', type=int, default=4990,
                   help='images of the largest class')
    p.add_argument('--imbalance-factor', type=float, default=100.)
    p.add_argument('--batch-size', type=int, nargs='+', default=[16])
    p.add_argument('--epochs', type=int, nargs='+', default=[2],
                   help='epochs of the simulation (several: one row each)')
    p.add_argument('--beta', type=float, nargs='+', default=[1e-3],
                   help='step size(s) of the weight learner')
    p.add_argument('--learner', nargs='+', default=['vector'],
                   choices=['vector', 'scratch', 'global'])
    p.add_argument('--global-interval', type=int, default=10,
                   help='batches between the global OT steps of the global '
                   'learner (its --beta is the mirror step size)')
    p.add_argument('--scratch-lr', type=float, default=1.0,
                   help='step size of the scratch learner (its --beta)')
    p.add_argument('--scratch-steps', type=int, default=10,
                   help='inner steps per batch of the scratch learner')
    p.add_argument('--init', default='uniform',
                   choices=['uniform', 'effective_number'])
    p.add_argument('--parametrization', default='normalize',
                   choices=['normalize', 'softmax'])
    p.add_argument('--label-mode', default='01', choices=['01', 'mse'])
    p.add_argument('--reg', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the rows as JSON here')
    args = p.parse_args(argv)
    for k in ('num_classes', 'n_max'):
        if getattr(args, k) < 1:
            p.error(f'--{k.replace("_", "-")} must be >= 1')
    if min(args.epochs) < 1:
        p.error('--epochs must be >= 1')
    if min(args.batch_size) < 1 or min(args.beta) <= 0:
        p.error('--batch-size must be >= 1 and --beta > 0')
    if args.global_interval < 1:
        p.error('--global-interval must be >= 1')
    return args


def presence_bound(counts, batch_size):
    """Share of the batches of a shuffled epoch (drawn without replacement)
    that hold at least one image of each class: ``1 - C(N - n_c, B) / C(N,
    B)``. With weights that sum to 1 in every batch, the bound on each
    class's share of the total training mass."""
    n = sum(counts)
    out = []
    for c in counts:
        none = 1.0
        for k in range(batch_size):
            none *= max(n - c - k, 0) / (n - k)
        out.append(1.0 - none)
    return out


def simulate(counts, batch_size, epochs, learner, reg=0.1, label_mode='01',
             seed=0):
    """Run ``learner`` on shuffled batches of the labels of ``counts``
    (label cost, prototypes of Q = one per class). Returns the class-mean
    relative weights of the last epoch (NaN: class never drawn)."""
    k = len(counts)
    labels = torch.cat(
        [torch.full((n, ), c, dtype=torch.long) for c, n in enumerate(counts)])
    n = len(labels)
    learner.build(n, labels, torch.as_tensor(counts), 1)
    rw = OTReweighter(learner, LabelCost(mode=label_mode), k, reg=reg)
    rw.set_meta(torch.zeros(k, 1), torch.arange(k))
    g = torch.Generator().manual_seed(seed)
    feats = torch.zeros(batch_size, 1)
    for _ in range(epochs):
        rw.reset_stats()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            rw(feats, labels[idx], idx)
    return rw.class_mean_weights()


def main(argv=None):
    args = parse_args(argv)
    counts = long_tail_counts(args.n_max, args.num_classes,
                              args.imbalance_factor)
    cnt = torch.tensor(counts, dtype=torch.float64)
    rows = []
    print(f'class counts {counts}; class mass of plain CE '
          f'{[round(x, 3) for x in (cnt / cnt.sum()).tolist()]}, '
          f'class-balanced {round(1 / len(counts), 3)} each')
    bounds = {}
    for bs in args.batch_size:
        bound = presence_bound(counts, bs)
        bounds[bs] = [round(x, 4) for x in bound]
        print(f'B={bs:<4d} batch-presence bound (max class mass) '
              f'{bounds[bs]}', flush=True)
        for kind in args.learner:
            betas = [args.scratch_lr] if kind == 'scratch' else args.beta
            for beta in betas:
                for epochs in args.epochs:
                    if kind == 'vector':
                        learner = WeightVector(
                            lr=beta, init=args.init,
                            parametrization=args.parametrization)
                    elif kind == 'global':
                        learner = GlobalWeightVector(
                            lr=beta, interval=args.global_interval)
                    else:
                        learner = ScratchWeights(
                            lr=beta, num_steps=args.scratch_steps)
                    w = simulate(counts, bs, epochs, learner, args.reg,
                                 args.label_mode, args.seed)
                    mass = torch.nan_to_num(w.double()) * cnt
                    mass = mass / mass.sum()
                    row = dict(
                        batch_size=bs, learner=kind, beta=beta,
                        epochs=epochs,
                        class_mean_weight=[round(x, 4) for x in w.tolist()],
                        class_mass=[round(x, 4) for x in mass.tolist()])
                    extra = ''
                    if kind == 'vector':  # the kept vector (uniform = 1)
                        row['max_weight'] = float(learner.weights.max())
                        extra = f', largest w {row["max_weight"]:.3g}'
                    if kind == 'global':  # the mass of w itself
                        row['global_class_mass'] = [
                            round(x, 4) for x in learner.class_mass().tolist()]
                        extra = f', global class mass {row["global_class_mass"]}'
                    rows.append(row)
                    print(f'B={bs:<4d} {kind:7s} beta={beta:<8g} '
                          f'epochs={epochs:<3d} class mass '
                          f'{row["class_mass"]}  (tail/head per-image '
                          f'weight {w[-1] / w[0]:.2f}{extra})', flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(counts=counts, args=vars(args),
                           presence_bound=bounds, rows=rows), f,
                      indent=1)


if __name__ == '__main__':
    main()
