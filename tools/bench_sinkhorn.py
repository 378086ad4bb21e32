# Copyright (c) mmot contributors. All rights reserved.
"""Benchmark mmot's Sinkhorn against POT (torch backend) and the authors'
stopping rule.

Problems: B x K (source batch x meta prototypes) with a ``1 - cosine`` cost
between random features (dim 64), uniform marginals, lambda = 0.1, float32
(``--cost combined``: paper Eq. 9 cost ``(1 - cos) + 0/1 label`` between
class-clustered features and the class means, a harder, more realistic
problem).
Every solver gets at most ``--max-iter`` (200, as in the paper) iterations;
mmot and POT stop at ``--tol`` (1e-6; mmot: L1 of the row marginal, POT: L2
of the column marginal, both checked every 10 iterations).

Columns: median wall time per call over ``--repeats`` runs after warm-up,
number of iterations, ``|loss - POT converged loss|`` (reference: POT
``sinkhorn_log`` in float64, stopThr 1e-12) and the final
marginal error ``|T 1 - a|_1 + |T^T 1 - b|_1`` of the returned plan.
"fwd+bwd" differentiates the loss w.r.t. the source marginal ``a`` only
(the re-weighting use case).

Example::

    PYTHONPATH=. python tools/bench_sinkhorn.py --repeats 20 --out bench.json
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0,
                os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))
from mmot.ot import (  # noqa: E402
    combined_cost,
    feature_cost,
    sinkhorn2,
    sinkhorn2_grad,
    sinkhorn_log)
from mmot.ot.authors import sinkhorn_authors  # noqa: E402
from mmot.ot.global_ot import global_ot  # noqa: E402

SHAPES = ((16, 10), (128, 100), (64, 8142))
# the whole-training-set problems of GlobalWeightVector: CIFAR-10-LT IF100,
# CIFAR-100-LT IF100, ImageNet-LT, iNat 2018 with 100 stochastic prototypes
GLOBAL_SHAPES = ((12380, 10), (10847, 100), (115846, 1000), (437513, 100))


def marginal_error(plan, a, b):
    plan = plan.detach().double()
    return float((plan.sum(1) - a.double()).abs().sum() +
                 (plan.sum(0) - b.double()).abs().sum())


def time_call(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def pot_value_and_grad(ot, a, b, C, reg, kw):
    """POT's sinkhorn2 forward and backward w.r.t. ``a``."""
    a_ = a.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        loss = ot.sinkhorn2(a_, b, C, reg, **kw)
    loss.backward()
    return loss.detach()


def make_problem(B, K, dim, seed, device, cost='cosine'):
    g = torch.Generator().manual_seed(seed)
    if cost == 'cosine':  # 1 - cos of independent random features
        z = torch.randn(B, dim, generator=g)
        zq = torch.randn(K, dim, generator=g)
        C = feature_cost(z, zq)
    else:  # paper Eq. 9 on class-clustered features, prototypes = means
        zq = torch.randn(K, dim, generator=g)
        y = torch.randint(0, K, (B, ), generator=g)
        z = zq[y] + 0.7 * torch.randn(B, dim, generator=g)
        C = combined_cost(z, zq, y, torch.arange(K))
    C = C.to(device)
    a = torch.full((B, ), 1.0 / B, device=device)
    b = torch.full((K, ), 1.0 / K, device=device)
    return a, b, C


def bench_shape(B, K, args, ot):
    reg, max_iter, tol = args.reg, args.max_iter, args.tol
    a, b, C = make_problem(B, K, args.dim, args.seed, args.device, args.cost)
    # float64 reference; re-normalise the marginals (1/K in float32 does
    # not sum to 1 in float64, which would prevent convergence)
    a64, b64 = a.double() / a.double().sum(), b.double() / b.double().sum()
    ref = float(
        ot.sinkhorn2(a64,
                     b64,
                     C.double(),
                     reg,
                     method='sinkhorn_log',
                     numItermax=20000,
                     stopThr=1e-12))
    rows = []

    def add(method, pass_, fn, loss, n_iter, err):
        ms = time_call(fn, args.repeats, args.warmup)
        rows.append(
            dict(shape=f'{B}x{K}',
                 method=method,
                 pass_=pass_,
                 ms=ms,
                 n_iter=n_iter,
                 loss_err=abs(float(loss) - ref),
                 marg_err=err))

    # ---- mmot --------------------------------------------------------------
    for meth in ('auto', 'log'):
        res = sinkhorn_log(a,
                           b,
                           C,
                           reg,
                           max_iter=max_iter,
                           tol=tol,
                           method=meth)
        err = marginal_error(res.plan, a, b)
        kw = dict(max_iter=max_iter, tol=tol, method=meth)

        def fwd(kw=kw):
            with torch.no_grad():
                return sinkhorn2(a, b, C, reg, grad='detach', **kw)

        add(f'mmot sinkhorn2 ({meth})', 'fwd', fwd, fwd(), res.n_iter, err)
        for grad in ('autodiff', 'implicit', 'envelope'):

            def fwd_bwd(kw=kw, grad=grad):
                a_ = a.clone().requires_grad_()
                loss = sinkhorn2(a_, b, C, reg, grad=grad, **kw)
                loss.backward()
                return loss.detach()

            add(f'mmot sinkhorn2 ({meth}, {grad})', 'fwd+bwd', fwd_bwd,
                fwd_bwd(), res.n_iter, err)
    # the weight step's call: value and implicit gradient without autograd
    kw = dict(max_iter=max_iter, tol=tol)
    res = sinkhorn_log(a, b, C, reg, **kw)
    err = marginal_error(res.plan, a, b)

    def value_grad():
        return sinkhorn2_grad(a, b, C, reg, **kw)[0]

    add('mmot sinkhorn2_grad (implicit)', 'value+grad', value_grad,
        value_grad(), res.n_iter, err)

    # ---- POT (torch backend) ---------------------------------------------
    for pot_method in ('sinkhorn_log', 'sinkhorn'):
        kw = dict(method=pot_method, numItermax=max_iter, stopThr=tol)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            plan, log = ot.sinkhorn(a, b, C, reg, log=True, **kw)
        err = marginal_error(plan, a, b)
        n_iter = int(
            log['niter']) + 1 if 'niter' in log else len(log['err']) * 10

        def pot_fwd(kw=kw):
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter('ignore')
                return ot.sinkhorn2(a, b, C, reg, **kw)

        def pot_fwd_bwd(kw=kw):
            return pot_value_and_grad(ot, a, b, C, reg, kw)

        add(f'POT sinkhorn2 ({pot_method})', 'fwd', pot_fwd, pot_fwd(), n_iter,
            err)
        add(f'POT sinkhorn2 ({pot_method})', 'fwd+bwd', pot_fwd_bwd,
            pot_fwd_bwd(), n_iter, err)

    # ---- authors' stopping rule (reference) -------------------------------
    # mmot.ot.authors.sinkhorn_authors: log domain from 0, Q side first,
    # stop when sum|dg| < 0.1, autograd through the iterations run
    loss, plan, n_iter = sinkhorn_authors(a, b, C, reg, max_iter)
    err = marginal_error(plan, a, b)

    def auth_fwd():
        with torch.no_grad():
            return sinkhorn_authors(a, b, C, reg, max_iter).value

    def auth_fwd_bwd():
        a_ = a.clone().requires_grad_()
        loss = sinkhorn_authors(a_, b, C, reg, max_iter).value
        loss.backward()
        return loss.detach()

    name = "authors' rule (log, sum|dg|<0.1, unrolled)"
    add(name, 'fwd', auth_fwd, loss, n_iter, err)
    add(name, 'fwd+bwd', auth_fwd_bwd, auth_fwd_bwd(), n_iter, err)
    return rows


def to_markdown(rows):
    head = ('| shape | method | pass | ms/call | iters | '
            '\\|loss - POT conv.\\| | marginal err |')
    lines = [head, '|---|---|---|---:|---:|---:|---:|']
    for r in rows:
        method = r['method'] + (f" (peak RSS +{r['peak_rss_mb']:.0f} MB)"
                                if 'peak_rss_mb' in r else '')
        lines.append(f"| {r['shape']} | {method} | {r['pass_']} | "
                     f"{r['ms']:.3f} | {r['n_iter']} | {r['loss_err']:.2e} | "
                     f"{r['marg_err']:.2e} |")
    if any('peak_rss_mb' in r for r in rows):
        lines += ['', 'Global shapes (N x M): POT (ot.solve, envelope '
                  'gradient) runs until it reaches mmot\'s marginal error '
                  '(or --pot-max-iter iterations); its error column is '
                  '|POT - mmot global_ot| on <T, C>.']
    return '\n'.join(lines)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats',
                   type=int,
                   default=20,
                   help='timed runs per row (median reported)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads',
                   type=int,
                   default=None,
                   help='torch.set_num_threads (default: machine default)')
    p.add_argument('--pot-max-iter', type=int, default=20000,
                   help='POT\'s iteration cap at the global shapes')
    p.add_argument('--global-shapes', default=None,
                   help='also time the global (whole-training-set) solve at '
                   'these N x M shapes, comma list or "all" (' + ', '.join(
                       f'{n}x{m}' for n, m in GLOBAL_SHAPES) + ')')
    p.add_argument('--shapes',
                   type=str,
                   default=None,
                   help='comma list like 16x10,128x100 (default: all)')
    p.add_argument('--reg', type=float, default=0.1)
    p.add_argument('--max-iter', type=int, default=200)
    p.add_argument('--tol', type=float, default=1e-6)
    p.add_argument('--dim', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', type=str, default='cpu')
    p.add_argument('--cost',
                   choices=['cosine', 'combined'],
                   default='cosine',
                   help="'cosine': 1 - cos of random features (default); "
                   "'combined': (1 - cos) + 0/1 label cost (paper Eq. 9) "
                   'on class-clustered features vs class-mean prototypes')
    p.add_argument('--out',
                   type=str,
                   default=None,
                   help='also write the rows as JSON to this file')
    return p.parse_args()


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_global_shape(N, M, args, ot):
    """The global OT step's solve (``mmot.ot.global_ot``: value and exact
    gradient w.r.t. a; in memory up to 1 GiB of cost, streamed beyond)
    against POT's sinkhorn2 fwd+bwd on the same float32 tensors (where the
    N x M problem fits), at equal tolerance. Costs: paper Eq. 9 on
    class-clustered features against the class prototypes, ``a`` uniform
    over the N examples."""
    reg, max_iter, tol = args.reg, args.max_iter, args.tol
    g = torch.Generator().manual_seed(args.seed)
    zq = torch.randn(M, args.dim, generator=g)
    y = torch.randint(0, M, (N, ), generator=g)
    z = zq[y] + 0.7 * torch.randn(N, args.dim, generator=g)
    yq = torch.arange(M)
    a = torch.full((N, ), 1.0 / N)
    b = torch.full((M, ), 1.0 / M)

    def cost_block(s, e):
        return combined_cost(z[s:e], zq, y[s:e], yq)

    rows = []
    rss0 = peak_rss_mb()
    res = global_ot(a, b, cost_block, reg, max_iter=max_iter, tol=tol)
    ms = time_call(lambda: global_ot(a, b, cost_block, reg,
                                     max_iter=max_iter, tol=tol),
                   max(1, args.repeats // 4), 0)
    # the rule of kernels.RowBlockProblem: -C / reg in float64, global_ot's
    # default cache_bytes
    path = 'in memory' if N * M * 8 <= 2**30 else 'streamed'
    rows.append(dict(shape=f'{N}x{M}', method=f'mmot global_ot ({path})',
                     pass_='value+grad', ms=ms, n_iter=res.n_iter,
                     loss_err=float('nan'), marg_err=res.err,
                     peak_rss_mb=peak_rss_mb() - rss0, value=float(res.value)))
    # POT needs the whole N x M cost and several copies of it, and plain
    # Sinkhorn needs thousands of iterations here: run it at the CIFAR
    # shapes (N M <= 2e6; at 437513 x 100 one iteration takes ~0.2 s, so its
    # 20000-iteration cap is over an hour). Its sinkhorn2 back-propagates
    # through every iteration (at 10847 x 100 and thousands of iterations
    # that is tens of GB), so here POT is timed through ot.solve with
    # grad='envelope' (the gradient of the regularised objective, one
    # backward step), the cheapest gradient it offers.
    if N * M <= 2e6:
        C = combined_cost(z, zq, y, yq)
        for pot_method in ('sinkhorn_log', 'sinkhorn'):
            # at equal marginal error: POT runs until it reaches ours
            kw = dict(method=pot_method, max_iter=args.pot_max_iter,
                      tol=max(res.err, 1e-9))

            def pot_fwd_bwd(kw=kw):
                a_ = a.clone().requires_grad_()
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    sol = ot.solve(C, a_, b, reg=reg, grad='envelope', **kw)
                sol.value.backward()
                return sol

            sol = pot_fwd_bwd()
            ms = time_call(pot_fwd_bwd, max(1, args.repeats // 4), 0)
            rows.append(dict(shape=f'{N}x{M}',
                             method=f'POT solve ({pot_method}, envelope)',
                             pass_='fwd+bwd', ms=ms, n_iter=-1,
                             loss_err=abs(float(sol.value_linear) -
                                          float(res.value)),
                             marg_err=marginal_error(sol.plan.detach(), a,
                                                     b)))
    return rows


def main():
    args = parse_args()
    try:
        import ot
    except ImportError:
        sys.exit('bench_sinkhorn.py needs POT (`pip install pot`)')
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = SHAPES if args.shapes is None else [
        tuple(int(x) for x in s.split('x')) for s in args.shapes.split(',')
    ]
    rows = []
    for B, K in shapes:
        rows += bench_shape(B, K, args, ot)
    global_shapes = [] if not args.global_shapes else GLOBAL_SHAPES if \
        args.global_shapes == 'all' else [
            tuple(int(x) for x in s.split('x'))
            for s in args.global_shapes.split(',')]
    for N, M in global_shapes:
        rows += bench_global_shape(N, M, args, ot)
        print(to_markdown(rows[-3:]), flush=True)  # the long ones, as they end
    info = (f'torch {torch.__version__}, POT {ot.__version__}, device '
            f'{args.device}, threads {torch.get_num_threads()}, float32, '
            f'cost={args.cost}, '
            f'reg={args.reg}, max_iter={args.max_iter}, tol={args.tol}, '
            f'median of {args.repeats} runs')
    print(info)
    print(to_markdown(rows))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(info=info, rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
