# Copyright (c) mmot contributors. All rights reserved.
"""Tests of mmot.ot.sinkhorn against POT and against autograd / finite
differences."""
import math

import pytest
import torch
import torch.nn.functional as Fn

from mmot.ot import (SinkhornResult, entropic_ot, feature_cost, sinkhorn2,
                     sinkhorn_log)

METHODS = ('auto', 'log')
D64 = torch.float64


def _problem(n, m, seed=0, uniform=False, dtype=D64, dim=8):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, dim, generator=g, dtype=dtype)
    z2 = torch.randn(m, dim, generator=g, dtype=dtype)
    C = feature_cost(z1, z2)  # 1 - cosine, in [0, 2]
    if uniform:
        a = torch.full((n, ), 1.0 / n, dtype=dtype)
        b = torch.full((m, ), 1.0 / m, dtype=dtype)
    else:
        a = torch.rand(n, generator=g, dtype=dtype) + 0.1
        b = torch.rand(m, generator=g, dtype=dtype) + 0.1
        a, b = a / a.sum(), b / b.sum()
    return a, b, C


def _pot_ref(a, b, C, reg):
    ot = pytest.importorskip('ot')
    kw = dict(method='sinkhorn_log', numItermax=100000, stopThr=1e-14)
    loss = ot.sinkhorn2(a, b, C, reg, **kw)
    plan = ot.sinkhorn(a, b, C, reg, **kw)
    return loss, plan


def _centered(x):
    return x - x.mean(-1, keepdim=True)


# --------------------------------------------------------------------------- #
# values vs POT
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('n,m,uniform,reg', [(16, 10, True, 0.1),
                                             (16, 10, False, 0.1),
                                             (55, 10, False, 0.1),
                                             (7, 23, False, 0.05),
                                             (12, 12, False, 1.0)])
def test_matches_pot(n, m, uniform, reg, method):
    a, b, C = _problem(n, m, seed=n * m, uniform=uniform)
    ref_loss, ref_plan = _pot_ref(a, b, C, reg)
    res = sinkhorn_log(a, b, C, reg, max_iter=5000, tol=1e-13, method=method)
    assert isinstance(res, SinkhornResult)
    assert res.n_iter < 5000
    assert float(res.err) <= 1e-12
    torch.testing.assert_close(res.plan, ref_plan, rtol=0, atol=1e-10)
    loss = sinkhorn2(a, b, C, reg, max_iter=5000, tol=1e-13, method=method)
    assert loss.shape == ()
    assert abs(float(loss) - float(ref_loss)) < 1e-9
    # plan has the documented form exp((f_i + g_j - C_ij) / reg)
    torch.testing.assert_close(res.plan,
                               torch.exp(
                                   (res.f[:, None] + res.g[None] - C) / reg),
                               rtol=1e-12,
                               atol=0)
    # the reported error is the larger L1 error of the two marginals
    errs = [float((res.plan.sum(d) - x).abs().sum()) for d, x in ((1, a), (0, b))]
    assert abs(max(errs) - float(res.err)) < 1e-15


def test_default_settings_paper_regime_float32():
    """Defaults (reg=0.1, <=200 iterations, tol=1e-6) in float32 reach the
    converged float64 POT value."""
    a, b, C = _problem(16, 10, seed=3, uniform=True, dim=64)
    ref_loss, _ = _pot_ref(a, b, C, 0.1)
    for method in METHODS:
        res = sinkhorn_log(a.float(), b.float(), C.float(), 0.1, method=method)
        assert res.plan.dtype == torch.float32
        assert res.n_iter < 200
        assert float(res.err) <= 1e-6
        loss = sinkhorn2(a.float(), b.float(), C.float(), 0.1, method=method)
        assert loss.dtype == torch.float32
        assert abs(float(loss) - float(ref_loss)) < 1e-5


def test_auto_and_log_iterates_agree():
    """The absorbed-kernel blocks of 'auto' reproduce the log-domain
    iterates (fixed number of iterations, no early stop)."""
    a, b, C = _problem(9, 6, seed=1)
    for it in (1, 2, 7, 23):
        r1 = sinkhorn_log(a,
                          b,
                          C,
                          0.05,
                          max_iter=it,
                          tol=None,
                          check_every=5,
                          method='auto')
        r2 = sinkhorn_log(a,
                          b,
                          C,
                          0.05,
                          max_iter=it,
                          tol=None,
                          check_every=5,
                          method='log')
        assert r1.n_iter == r2.n_iter == it
        torch.testing.assert_close(r1.plan, r2.plan, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(r1.f, r2.f, rtol=0, atol=1e-10)
    # after a few iterations the problem is not converged yet: the test
    # above compares non-trivial iterates
    assert float(sinkhorn_log(a, b, C, 0.05, max_iter=2, tol=None).err) > 1e-4


# --------------------------------------------------------------------------- #
# batching
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('method', METHODS)
def test_batched_equals_loop(method):
    B, n, m = 4, 11, 7
    probs = [_problem(n, m, seed=s) for s in range(B)]
    a = torch.stack([p[0] for p in probs])
    b = probs[0][1]  # shared (m,) target marginal
    C = torch.stack([p[2] for p in probs])
    # fixed number of iterations: batched == loop up to rounding
    out = sinkhorn_log(a, b, C, 0.1, max_iter=40, tol=None, method=method)
    loss = sinkhorn2(a, b, C, 0.1, max_iter=40, tol=None, method=method)
    assert out.plan.shape == (B, n, m) and loss.shape == (B, )
    assert out.f.shape == (B, n) and out.g.shape == (B, m)
    for i in range(B):
        single = sinkhorn_log(a[i],
                              b,
                              C[i],
                              0.1,
                              max_iter=40,
                              tol=None,
                              method=method)
        torch.testing.assert_close(out.plan[i],
                                   single.plan,
                                   rtol=1e-12,
                                   atol=1e-15)
        torch.testing.assert_close(loss[i],
                                   sinkhorn2(a[i],
                                             b,
                                             C[i],
                                             0.1,
                                             max_iter=40,
                                             tol=None,
                                             method=method),
                                   rtol=1e-12,
                                   atol=0)
    # early stopping: the batch stops on its worst member; all converged
    out = sinkhorn_log(a, b, C, 0.1, tol=1e-9, method=method)
    assert float(out.err) <= 1e-9
    for i in range(B):
        ref_loss, _ = _pot_ref(a[i], b, C[i], 0.1)
        assert abs(float((out.plan[i] * C[i]).sum()) - float(ref_loss)) < 1e-8
    # broadcast: one cost matrix shared by a batch of source marginals
    lb = sinkhorn2(a, b, C[0], 0.1, max_iter=40, tol=None, method=method)
    for i in range(B):
        torch.testing.assert_close(lb[i],
                                   sinkhorn2(a[i],
                                             b,
                                             C[0],
                                             0.1,
                                             max_iter=40,
                                             tol=None,
                                             method=method),
                                   rtol=1e-12,
                                   atol=0)


# --------------------------------------------------------------------------- #
# gradients
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('method', METHODS)
def test_envelope_equals_autodiff_on_regularised_objective(method):
    a, b, C = _problem(10, 6, seed=5)
    reg = 0.1
    grads, vals = {}, {}
    for mode in ('autodiff', 'envelope'):
        a_ = a.clone().requires_grad_()
        b_ = b.clone().requires_grad_()
        C_ = C.clone().requires_grad_()
        val = entropic_ot(a_,
                          b_,
                          C_,
                          reg,
                          max_iter=3000,
                          tol=1e-13,
                          grad=mode,
                          method=method)
        vals[mode] = val
        grads[mode] = torch.autograd.grad(val, [a_, b_, C_])
    torch.testing.assert_close(vals['autodiff'],
                               vals['envelope'],
                               rtol=0,
                               atol=1e-14)
    ga, gb, gC = grads['autodiff']
    ea, eb, eC = grads['envelope']
    torch.testing.assert_close(_centered(ga), ea, rtol=0, atol=1e-9)
    torch.testing.assert_close(_centered(gb), eb, rtol=0, atol=1e-9)
    torch.testing.assert_close(gC, eC, rtol=0, atol=1e-9)
    # the envelope gradients are centred potentials and the plan
    res = sinkhorn_log(a, b, C, reg, max_iter=3000, tol=1e-13)
    torch.testing.assert_close(ea, _centered(res.f), rtol=0, atol=1e-12)
    torch.testing.assert_close(eC, res.plan, rtol=0, atol=1e-14)


def test_entropic_value_matches_pot_plan():
    a, b, C = _problem(13, 8, seed=2)
    reg = 0.07
    _, plan = _pot_ref(a, b, C, reg)
    expected = (plan * C).sum() + reg * (plan * plan.log()).sum()
    for grad in ('autodiff', 'envelope', 'detach'):
        val = entropic_ot(a, b, C, reg, max_iter=5000, tol=1e-13, grad=grad)
        assert abs(float(val) - float(expected)) < 1e-10


def test_sinkhorn2_envelope_approximates_autodiff_small_reg():
    """For <T*, C> the envelope gradients are those of the regularised
    objective: close to the exact ones at small reg, with a gap that
    shrinks as reg decreases."""
    z1 = torch.randn(16,
                     8,
                     generator=torch.Generator().manual_seed(0),
                     dtype=D64)
    z2 = torch.randn(10,
                     8,
                     generator=torch.Generator().manual_seed(1),
                     dtype=D64)
    C0 = feature_cost(z1, z2)
    w0 = torch.randn(16, generator=torch.Generator().manual_seed(2),
                     dtype=D64).softmax(0)
    b = torch.full((10, ), 0.1, dtype=D64)
    gaps = []
    for reg in (1.0, 0.1, 0.01):
        g = {}
        for mode in ('autodiff', 'envelope'):
            w = w0.clone().requires_grad_()
            C = C0.clone().requires_grad_()
            loss = sinkhorn2(w,
                             b,
                             C,
                             reg,
                             max_iter=20000,
                             tol=1e-11,
                             grad=mode)
            gw, gC = torch.autograd.grad(loss, [w, C])
            g[mode] = (_centered(gw), gC)
        gap = float((g['autodiff'][0] - g['envelope'][0]).norm() /
                    g['autodiff'][0].norm())
        gaps.append(gap)
        if reg == 0.01:
            assert Fn.cosine_similarity(g['autodiff'][0], g['envelope'][0],
                                        0) > 0.99
            assert Fn.cosine_similarity(g['autodiff'][1].flatten(),
                                        g['envelope'][1].flatten(), 0) > 0.99
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[0] > 0.5  # at large reg the two really differ


@pytest.mark.parametrize('method', METHODS)
def test_autodiff_gradcheck_fixed_iterations(method):
    """Autodiff through the unrolled loop == finite differences of the
    computed function (fixed iteration count, so it is smooth)."""
    a, b, C = _problem(5, 4, seed=7)
    a.requires_grad_()
    b.requires_grad_()
    C.requires_grad_()

    def fn(a, b, C):
        return sinkhorn2(a,
                         b,
                         C,
                         0.2,
                         max_iter=25,
                         tol=None,
                         check_every=4,
                         method=method)

    assert torch.autograd.gradcheck(fn, (a, b, C), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize('method', METHODS)
def test_autodiff_vs_central_fd_converged(method):
    """Gradient of the converged <T*, C> along simplex directions and w.r.t.
    C entries matches central finite differences."""
    a, b, C = _problem(8, 6, seed=11)
    reg, kw = 0.05, dict(max_iter=5000, tol=1e-13, method=method)
    a_ = a.clone().requires_grad_()
    C_ = C.clone().requires_grad_()
    ga, gC = torch.autograd.grad(sinkhorn2(a_, b, C_, reg, **kw), [a_, C_])
    h = 1e-5
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        d = torch.randn(8, generator=g, dtype=D64)
        d = d - d.mean()  # tangent to the simplex
        fd = (sinkhorn2(a + h * d, b, C, reg, **kw) -
              sinkhorn2(a - h * d, b, C, reg, **kw)) / (2 * h)
        assert abs(float(fd) - float(ga @ d)) < 1e-6
    for (i, j) in [(0, 0), (3, 5), (7, 2)]:
        E = torch.zeros_like(C)
        E[i, j] = h
        fd = (sinkhorn2(a, b, C + E, reg, **kw) -
              sinkhorn2(a, b, C - E, reg, **kw)) / (2 * h)
        assert abs(float(fd) - float(gC[i, j])) < 1e-6
    # d<T*,C>/dC is NOT just the plan (that is the envelope approximation)
    res = sinkhorn_log(a, b, C, reg, **kw)
    assert float((gC - res.plan).abs().max()) > 1e-3


def test_envelope_gradients_broadcast_and_detach():
    B, n, m = 3, 6, 5
    probs = [_problem(n, m, seed=20 + s) for s in range(B)]
    a = torch.stack([p[0] for p in probs]).requires_grad_()
    b = probs[0][1].clone().requires_grad_()  # (m,) shared
    C = torch.stack([p[2] for p in probs]).requires_grad_()
    loss = sinkhorn2(a, b, C, 0.1, tol=1e-12, max_iter=2000, grad='envelope')
    assert loss.shape == (B, )
    ga, gb, gC = torch.autograd.grad(loss.sum(), [a, b, C])
    assert ga.shape == a.shape and gb.shape == b.shape and gC.shape == C.shape
    res = sinkhorn_log(a.detach(),
                       b.detach(),
                       C.detach(),
                       0.1,
                       tol=1e-12,
                       max_iter=2000)
    torch.testing.assert_close(ga, _centered(res.f))
    torch.testing.assert_close(gb, _centered(res.g).sum(0))
    torch.testing.assert_close(gC, res.plan)
    out = sinkhorn2(a, b, C, 0.1, grad='detach')
    assert not out.requires_grad
    torch.testing.assert_close(out, loss.detach(), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- #
# stability / edge cases
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('dtype', [torch.float32, D64])
@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('reg', [1e-3, 1e-2])
@pytest.mark.parametrize('scale', [1.0, 1e3])
def test_stability_small_reg_large_costs_known_solution(
        reg, scale, method, dtype):
    """C = scale * (1 - I) + row offsets up to 1e3 with a = b (a scaled 0/1
    label cost): the entropic plan is diag(a) up to exp(-scale / reg) for
    tiny reg (row offsets are absorbed in f), so the solver must converge to
    it with no overflow although C / reg reaches 1e6."""
    n = 9
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, generator=g, dtype=D64) + 0.2
    a = a / a.sum()
    al = torch.rand(n, generator=g, dtype=D64) * 1e3
    C = scale * (1 - torch.eye(n, dtype=D64)) + al[:, None]
    expected = float((a * al).sum())
    a, C = a.to(dtype), C.to(dtype)
    res = sinkhorn_log(a, a, C, reg, method=method)
    assert torch.isfinite(res.plan).all()
    assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
    assert float(res.err) < (1e-5 if dtype == torch.float32 else 1e-9)
    torch.testing.assert_close(res.plan, torch.diag(a), rtol=0, atol=1e-5)
    for mode in ('autodiff', 'envelope'):
        a_ = a.clone().requires_grad_()
        C_ = C.clone().requires_grad_()
        loss = sinkhorn2(a_, a, C_, reg, grad=mode, method=method)
        assert math.isfinite(float(loss.detach()))
        assert abs(float(loss) -
                   expected) < 1e-6 * expected * (100 if dtype == torch.float32
                                                  else 1)
        ga, gC = torch.autograd.grad(loss, [a_, C_])
        assert torch.isfinite(ga).all() and torch.isfinite(gC).all()


@pytest.mark.parametrize('dtype', [torch.float32, D64])
@pytest.mark.parametrize('reg', [1e-3, 1e-2])
def test_stability_hard_random_costs(reg, dtype):
    """Random costs up to 1e3 with reg down to 1e-3 (C/reg up to 1e6): no
    NaN/inf in loss, plan, potentials or gradients; the column marginal is
    exact and 'auto' equals the pure log-domain solver. (Sinkhorn needs
    O(C/reg) iterations here, so the row marginal is not converged.)"""
    a, b, C = _problem(12, 8, seed=4, dtype=dtype)
    C = C * 500.0  # costs in [0, 1e3]
    results = {}
    for method in METHODS:
        res = sinkhorn_log(a, b, C, reg, max_iter=300, method=method)
        assert torch.isfinite(res.plan).all() and (res.plan >= 0).all()
        assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
        assert math.isfinite(float(res.err))
        col = float((res.plan.sum(0) - b).abs().sum())
        assert col < (1e-5 if dtype == torch.float32 else 1e-12)
        results[method] = res
        for mode in ('autodiff', 'envelope'):
            a_ = a.clone().requires_grad_()
            C_ = C.clone().requires_grad_()
            loss = sinkhorn2(a_,
                             b,
                             C_,
                             reg,
                             max_iter=300,
                             grad=mode,
                             method=method)
            assert math.isfinite(float(loss.detach()))
            ga, gC = torch.autograd.grad(loss, [a_, C_])
            assert torch.isfinite(ga).all() and torch.isfinite(gC).all()
    if dtype == D64:
        torch.testing.assert_close(results['auto'].plan,
                                   results['log'].plan,
                                   rtol=1e-6,
                                   atol=1e-12)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('dtype', [torch.float32, D64])
def test_zero_mass_entries(method, dtype):
    a, b, C = _problem(10, 7, seed=9, dtype=dtype)
    keep = torch.tensor([0, 1, 3, 4, 6, 7, 9])
    a0 = torch.zeros_like(a)
    a0[keep] = a[keep] / a[keep].sum()
    b0 = b.clone()
    b0[2] = 0
    b0 = b0 / b0.sum()
    keep_b = torch.tensor([0, 1, 3, 4, 5, 6])
    Cr = C[keep][:, keep_b]
    kw = dict(max_iter=2000,
              tol=1e-6 if dtype == torch.float32 else 1e-12,
              method=method)

    res = sinkhorn_log(a0, b0, C, 0.1, **kw)
    red = sinkhorn_log(a0[keep], b0[keep_b], Cr, 0.1, **kw)
    assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
    assert float(res.plan[[2, 5, 8]].abs().max()) <= torch.finfo(dtype).tiny
    assert float(res.plan[:, 2].abs().max()) <= torch.finfo(dtype).tiny
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(res.plan[keep][:, keep_b],
                               red.plan,
                               rtol=0,
                               atol=atol)
    for mode in ('autodiff', 'envelope'):
        a_ = a0.clone().requires_grad_()
        C_ = C.clone().requires_grad_()
        loss = sinkhorn2(a_, b0, C_, 0.1, grad=mode, **kw)
        ar = a0[keep].clone().requires_grad_()
        Cr_ = Cr.clone().requires_grad_()
        loss_r = sinkhorn2(ar, b0[keep_b], Cr_, 0.1, grad=mode, **kw)
        assert abs(float(loss) - float(loss_r)) < 10 * atol
        ga, gC = torch.autograd.grad(loss, [a_, C_])
        gar, gCr = torch.autograd.grad(loss_r, [ar, Cr_])
        assert torch.isfinite(ga).all() and torch.isfinite(gC).all()
        torch.testing.assert_close(gC[keep][:, keep_b],
                                   gCr,
                                   rtol=0,
                                   atol=100 * atol)
        if mode == 'autodiff':
            # same computed function on the support -> same raw gradient
            torch.testing.assert_close(ga[keep], gar, rtol=0, atol=100 * atol)
            assert float(ga[[2, 5, 8]].abs().max()) == 0.0


@pytest.mark.parametrize('method', METHODS)
def test_check_every_and_early_stop(method):
    """The stopping rule of the Sinkhorn blocks. (Without autograd 'auto'
    hands over to Newton steps after the first block, see
    test_float64_kernel_fast_path_matches_log_domain: here a requires grad,
    so the blocks run to the end.)"""
    a, b, C = _problem(16, 10, seed=0, uniform=True)
    a = a.clone().requires_grad_()
    n_iters = {}
    for ce in (1, 3, 10):
        res = sinkhorn_log(a,
                           b,
                           C,
                           0.1,
                           max_iter=200,
                           tol=1e-8,
                           check_every=ce,
                           method=method)
        assert res.n_iter < 200
        assert res.n_iter % ce == 0
        assert float(res.err) <= 1e-8
        n_iters[ce] = res.n_iter
    # sparser checks can only overshoot the first converged iteration
    assert n_iters[1] <= n_iters[3] <= n_iters[1] + 2
    assert n_iters[1] <= n_iters[10] <= n_iters[1] + 9
    # no tolerance: exactly max_iter iterations
    res = sinkhorn_log(a, b, C, 0.1, max_iter=57, tol=None, method=method)
    assert res.n_iter == 57
    # hard problem: stops at max_iter without converging
    res = sinkhorn_log(a,
                       b,
                       C * 50,
                       0.01,
                       max_iter=30,
                       tol=1e-12,
                       method=method)
    assert res.n_iter == 30 and float(res.err) > 1e-12


def test_float32_and_half_inputs():
    a, b, C = _problem(20, 9, seed=12)
    ref = sinkhorn2(a, b, C, 0.1, tol=1e-12, max_iter=1000)
    a32, b32 = a.float().requires_grad_(), b.float()
    C32 = C.float().requires_grad_()
    loss = sinkhorn2(a32, b32, C32, 0.1)
    assert loss.dtype == torch.float32
    assert abs(float(loss) - float(ref)) < 1e-5
    ga, gC = torch.autograd.grad(loss, [a32, C32])
    assert ga.dtype == torch.float32 and torch.isfinite(gC).all()
    res = sinkhorn_log(a.half(), b.half(), C.half(), 0.1)
    assert res.plan.dtype == torch.float32
    assert float(res.err) < 1e-3  # half inputs are rounded marginals


def test_argument_errors():
    a, b, C = _problem(4, 3)
    with pytest.raises(ValueError, match='`a`'):
        sinkhorn_log(a[:3], b, C, 0.1)
    with pytest.raises(ValueError, match='`b`'):
        sinkhorn_log(a, b[:2], C, 0.1)
    with pytest.raises(ValueError, match='batch dims'):
        sinkhorn_log(a.expand(2, 4), b, C.expand(3, 4, 3), 0.1)
    with pytest.raises(ValueError, match='`reg`'):
        sinkhorn_log(a, b, C, 0.0)
    with pytest.raises(ValueError, match='`max_iter`'):
        sinkhorn_log(a, b, C, 0.1, max_iter=0)
    with pytest.raises(ValueError, match='`check_every`'):
        sinkhorn_log(a, b, C, 0.1, check_every=0)
    with pytest.raises(ValueError, match='`method`'):
        sinkhorn_log(a, b, C, 0.1, method='sinkhorn')
    with pytest.raises(ValueError, match='`grad`'):
        sinkhorn2(a, b, C, 0.1, grad='unrolled')
    with pytest.raises(TypeError, match='`C`'):
        sinkhorn_log(a, b, C.numpy(), 0.1)


def test_scaling_block_custom_backward_matches_autograd():
    """The hand-written reverse loop of the 'auto' blocks equals autograd
    through the same iterations (incl. broadcast a / b and the tiny floor
    of the kernel)."""
    from mmot.ot.kernels import _ScalingBlock, _scaling_loop
    g = torch.Generator().manual_seed(3)
    B, n, m, iters = 3, 6, 4, 5
    tiny = torch.finfo(D64).tiny
    P = torch.randn(B, n, m, generator=g, dtype=D64) - 2.0
    P[0, 1, 2] = -800.0  # exp underflows below tiny -> clamped entry
    P.requires_grad_()
    a = (torch.rand(n, 1, generator=g, dtype=D64) + 0.1).requires_grad_()
    b = (torch.rand(B, m, 1, generator=g, dtype=D64) + 0.1).requires_grad_()
    gu = torch.randn(B, n, 1, generator=g, dtype=D64)
    gv = torch.randn(B, m, 1, generator=g, dtype=D64)

    u, v, K = _ScalingBlock.apply(P, a, b, iters, tiny)
    got = torch.autograd.grad((u * gu).sum() + (v * gv).sum(), [P, a, b])
    u2, v2 = _scaling_loop(P.exp().clamp_min(tiny), a, b, iters)
    ref = torch.autograd.grad((u2 * gu).sum() + (v2 * gv).sum(), [P, a, b])
    torch.testing.assert_close(u, u2, rtol=1e-13, atol=0)
    for x, y in zip(got, ref):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    assert abs(float(got[0][0, 1, 2])) < 1e-300
    # only one output used
    got_u = torch.autograd.grad(
        _ScalingBlock.apply(P, a, b, iters, tiny)[0].sum(), [P])[0]
    ref_u = torch.autograd.grad(
        _scaling_loop(P.exp().clamp_min(tiny), a, b, iters)[0].sum(), [P])[0]
    torch.testing.assert_close(got_u, ref_u, rtol=1e-10, atol=1e-12)


def test_auto_and_log_autodiff_gradients_agree():
    a, b, C = _problem(9, 7, seed=8)
    grads = {}
    for method in METHODS:
        a_ = a.clone().requires_grad_()
        b_ = b.clone().requires_grad_()
        C_ = C.clone().requires_grad_()
        loss = sinkhorn2(a_,
                         b_,
                         C_,
                         0.05,
                         max_iter=33,
                         tol=None,
                         method=method)
        grads[method] = torch.autograd.grad(loss, [a_, b_, C_])
    for x, y in zip(grads['auto'], grads['log']):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('n, m', [(16, 10), (55, 10), (8, 30), (64, 200)])
def test_implicit_gradients_equal_unrolled_autodiff(n, m):
    """grad='implicit' (one linear solve at the fixed point) gives the exact
    gradient of <T*, C>: the same as back-propagating through a converged
    loop, for a, b and C."""
    g = torch.Generator().manual_seed(n * 1000 + m)
    a = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
    a, b = a / a.sum(), b / b.sum()
    C = torch.rand(n, m, generator=g, dtype=torch.float64)
    grads = {}
    for mode in ('autodiff', 'implicit'):
        a_, b_, C_ = (t.clone().requires_grad_() for t in (a, b, C))
        loss = sinkhorn2(a_, b_, C_, 0.1, max_iter=5000, tol=1e-13, grad=mode)
        loss.backward()
        grads[mode] = (loss.detach(), a_.grad - a_.grad.mean(),
                       b_.grad - b_.grad.mean(), C_.grad)
    for x, y in zip(grads['autodiff'], grads['implicit']):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-7)


def test_implicit_batched_and_float32():
    g = torch.Generator().manual_seed(3)
    a = torch.softmax(torch.randn(4, 16, generator=g), -1).requires_grad_()
    b = torch.full((10, ), 0.1)
    C = torch.rand(4, 16, 10, generator=g)
    loss = sinkhorn2(a, b, C, 0.1, grad='implicit')
    loss.sum().backward()
    ref = []
    for i in range(4):
        ai = a.detach()[i].double().requires_grad_()
        sinkhorn2(ai, b.double(), C[i].double(), 0.1, max_iter=2000,
                  tol=1e-12, grad='autodiff').backward()
        ref.append(ai.grad - ai.grad.mean())
    torch.testing.assert_close(a.grad.double(), torch.stack(ref), atol=1e-4, rtol=1e-3)
    assert torch.isfinite(a.grad).all()


# --------------------------------------------------------------------------- #
# no-autograd value and gradient; the float64 one-kernel fast path
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('grad', ['implicit', 'envelope', 'autodiff'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_sinkhorn2_grad_equals_autograd_of_sinkhorn2(grad, dtype):
    """sinkhorn2_grad returns what backward() of sinkhorn2 gives (centred),
    without recording a graph."""
    from mmot.ot import sinkhorn2_grad
    a, b, C = _problem(16, 10, seed=4, dtype=dtype)
    a_ = a.clone().requires_grad_()
    ref = sinkhorn2(a_, b, C, 0.1, grad=grad)
    ref.backward()
    value, ga = sinkhorn2_grad(a, b, C, 0.1, grad=grad)
    assert not value.requires_grad and not ga.requires_grad
    assert value.dtype == ga.dtype == dtype
    tol = dict(atol=1e-10, rtol=1e-8) if dtype == D64 else dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(value, ref.detach(), **tol)
    torch.testing.assert_close(ga, _centered(a_.grad), **tol)
    with pytest.raises(ValueError, match='grad'):
        sinkhorn2_grad(a, b, C, 0.1, grad='detach')


def test_float64_kernel_fast_path_matches_log_domain():
    """Without autograd, a small problem is solved in float64, by Newton
    steps once the first blocks have not converged: the same plan as the log-domain loop (to the
    tolerance) in far fewer iterations, both marginals within tol, in
    float32 and float64; with tol=None it runs exactly max_iter Sinkhorn
    iterations, the log-domain iterates. A badly conditioned problem
    (reg = 0.01, C up to 2) still converges to POT's plan."""
    for dtype in (torch.float64, torch.float32):
        a, b, C = _problem(16, 10, seed=5, dtype=dtype)
        C = C + (torch.arange(16)[:, None] % 10 != torch.arange(10)).to(dtype)
        fast = sinkhorn_log(a, b, C, 0.1, tol=1e-9 if dtype == D64 else 1e-6)
        ref = sinkhorn_log(a, b, C, 0.1, method='log', max_iter=5000,
                           tol=1e-12 if dtype == D64 else 1e-7)
        assert fast.plan.dtype == dtype
        assert fast.n_iter < ref.n_iter / 2, (fast.n_iter, ref.n_iter)
        assert float(fast.err) <= (1e-9 if dtype == D64 else 1e-6)
        for dim, marg in ((-1, a), (-2, b)):
            assert float((fast.plan.sum(dim) - marg).abs().sum()) <= \
                (1e-9 if dtype == D64 else 2e-6)
        tol = 1e-9 if dtype == D64 else 1e-6
        torch.testing.assert_close(fast.plan, ref.plan, atol=tol, rtol=1e-4)
        for it in (3, 37):
            r1 = sinkhorn_log(a, b, C, 0.1, max_iter=it, tol=None)
            r2 = sinkhorn_log(a, b, C, 0.1, max_iter=it, tol=None, method='log')
            assert r1.n_iter == r2.n_iter == it
            torch.testing.assert_close(r1.plan, r2.plan, atol=tol, rtol=1e-4)
    a, b, C = _problem(16, 10, seed=5)
    hard = sinkhorn_log(a, b, C, 0.01, max_iter=5000)
    ref_loss, ref_plan = _pot_ref(a, b, C, 0.01)
    torch.testing.assert_close(hard.plan, ref_plan, atol=1e-6, rtol=0)


@pytest.mark.parametrize('n, m', [(4, 10), (12, 10)])
def test_implicit_gradients_with_zero_masses(n, m):
    """Two exactly-zero masses in a made the reduced system on the smaller
    side singular (a short last batch against 10 prototypes, after a softmax
    underflow): the solve now eliminates that side and agrees with
    back-propagation through a converged loop; with zeros in b as well the
    least-squares solution keeps the gradient finite."""
    g = torch.Generator().manual_seed(n)
    a = torch.rand(n, generator=g, dtype=D64) + 0.1
    a[1] = a[2] = 0.0
    a = a / a.sum()
    b = torch.full((m, ), 1.0 / m, dtype=D64)
    C = torch.rand(n, m, generator=g, dtype=D64)
    grads = []
    for mode in ('autodiff', 'implicit'):
        a_ = a.clone().requires_grad_()
        sinkhorn2(a_, b, C, 0.1, max_iter=5000, tol=1e-13, grad=mode).backward()
        grads.append(a_.grad)
    keep = a > 0
    torch.testing.assert_close(_centered(grads[1][keep]),
                               _centered(grads[0][keep]), atol=1e-8, rtol=1e-6)
    # the same without autograd (the weight step's call)
    from mmot.ot import sinkhorn2_grad
    _, ga = sinkhorn2_grad(a, b, C, 0.1, max_iter=5000, tol=1e-13)
    torch.testing.assert_close(_centered(ga[keep]), _centered(grads[0][keep]),
                               atol=1e-8, rtol=1e-6)
    b0 = b.clone()
    b0[0] = b0[3] = 0.0
    b0 = b0 / b0.sum()
    a_ = a.clone().requires_grad_()
    sinkhorn2(a_, b0, C, 0.1, grad='implicit').backward()
    assert torch.isfinite(a_.grad).all()


def test_dispatch_rule_routes(monkeypatch):
    """One solver, routed by a rule: small problems with nothing recording
    autograd run in float64 with Newton steps (fewer iterations than plain
    Sinkhorn, both marginals within tol); autograd, method='log', batches
    of more than 2^17 entries and zero masses run the Sinkhorn iterations
    alone; every route agrees with POT."""
    from mmot.ot import kernels, solver
    seen = []
    newton = solver.newton
    monkeypatch.setattr(solver, 'newton', lambda problem, *x: seen.append(
        problem.M.dtype) or newton(problem, *x))
    a, b, C = _problem(16, 10, seed=3, dtype=torch.float32)
    C = C + (torch.arange(16)[:, None] % 10 != torch.arange(10)).float()
    ref_loss, ref_plan = _pot_ref(a.double(), b.double(), C.double(), 0.1)
    fast = sinkhorn_log(a, b, C, 0.1)
    assert seen == [D64] and fast.plan.dtype == torch.float32
    plain = sinkhorn_log(a, b, C, 0.1, method='log', max_iter=5000)
    assert len(seen) == 1 and fast.n_iter < plain.n_iter
    for res in (fast, plain):
        torch.testing.assert_close(res.plan.double(), ref_plan, atol=2e-6,
                                   rtol=0)
    a_ = a.clone().requires_grad_()
    loss = sinkhorn2(a_, b, C, 0.1, grad='autodiff')  # records autograd
    loss.backward()
    assert len(seen) == 1 and abs(float(loss) - float(ref_loss)) < 1e-5
    a0 = a.clone()
    a0[:2] = 0
    sinkhorn_log(a0 / a0.sum(), b, C, 0.1)  # zero masses: no Newton
    assert len(seen) == 1
    a2, b2, C2 = _problem(128, 100, seed=3, dtype=torch.float32)
    mid = sinkhorn_log(a2, b2, C2, 0.1)  # both sides > 32: no Newton
    assert len(seen) == 1 and float(mid.err) <= 2e-6
    big_a, big_b, big_C = _problem(1400, 100, seed=3, dtype=torch.float32)
    assert big_C.numel() > 1 << 17
    built = []
    init = kernels.DenseProblem.__init__
    monkeypatch.setattr(kernels.DenseProblem, '__init__', lambda self, M, *x,
                        **k: built.append(M.dtype) or init(self, M, *x, **k))
    big = sinkhorn_log(big_a, big_b, big_C, 0.1)
    assert built == [torch.float32] and len(seen) == 1
    assert float(big.err) <= 2e-6


def test_implicit_float32_pieces_for_large_problems():
    """A float32 problem of more than 2^17 entries forms the implicit
    gradient's pieces in float32 (3x faster at 64 x 8142): within 1e-6 of
    the float64 pieces, and within the float32 solve's error of the float64
    problem's gradient."""
    from mmot.ot import kernels, sinkhorn2_grad
    from mmot.ot.implicit import implicit_grads
    a, b, C = _problem(64, 2100, seed=1, dtype=torch.float32)
    assert C.numel() > 1 << 17
    res = sinkhorn_log(a, b, C, 0.1)
    g32 = implicit_grads(kernels.DensePlan(res.plan, C, torch.float32), 0.1,
                         wrt_cost=False)[0]
    g64 = implicit_grads(kernels.DensePlan(res.plan, C), 0.1,
                         wrt_cost=False)[0]
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), g64, atol=1e-6, rtol=0)
    _, ga = sinkhorn2_grad(a, b, C, 0.1)
    torch.testing.assert_close(ga, g32, atol=1e-6, rtol=0)
    _, ref = sinkhorn2_grad(a.double(), b.double(), C.double(), 0.1,
                            tol=1e-12, max_iter=2000)
    torch.testing.assert_close(ga.double(), ref, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize('n, m', [(60, 5), (8, 40)])
def test_global_solver_equals_dense_solver(n, m):
    """The whole-training-set solver (row blocks, streamed cost) and the
    dense one run the same loop, Newton steps and implicit gradient: same
    value and gradient (to the tolerance) on one problem."""
    from mmot.ot import sinkhorn2_grad
    from mmot.ot.global_ot import global_ot
    a, b, C = _problem(n, m, seed=n, dtype=D64)
    value, ga = sinkhorn2_grad(a, b, C, 0.1, max_iter=5000, tol=1e-13)
    res = global_ot(a, b, lambda s, e: C[s:e], 0.1, max_iter=5000,
                    tol=1e-13, block_rows=7, cache_bytes=0)
    assert abs(float(res.value) - float(value)) < 1e-11
    torch.testing.assert_close(res.grad_a, ga, atol=1e-9, rtol=0)
