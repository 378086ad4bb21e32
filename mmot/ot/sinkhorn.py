# Copyright (c) mmot contributors. All rights reserved.
"""Batched log-domain Sinkhorn for entropic optimal transport (pure torch).

Problem solved (``reg`` is the paper's lambda,
``H(T) = -sum_ij T_ij ln T_ij``)::

    T* = argmin_{T >= 0, T 1 = a, T^T 1 = b}  <T, C> - reg * H(T)

The solution has the form ``T*_ij = exp((f_i + g_j - C_ij) / reg)`` where
``f`` and ``g`` are the dual potentials (in cost units).  The iterations are
carried out on the scaled potentials ``F = f / reg`` and ``G = g / reg``::

    F <- log(a) - logsumexp_j(G_j - C_ij / reg)
    G <- log(b) - logsumexp_i(F_i - C_ij / reg)

which never exponentiates ``-C / reg`` on its own, so the solver is stable for
small ``reg`` and large costs (e.g. ``reg = 1e-3`` with costs ``~1e3``).

Three public functions:

* :func:`sinkhorn_log` - the solver; returns plan, potentials, iterations and
  the final marginal error.
* :func:`sinkhorn2` - the transport cost ``<T*, C>`` (the quantity returned
  by POT's ``ot.sinkhorn2``, i.e. without the entropy term), differentiable.
* :func:`entropic_ot` - the regularised objective
  ``<T*, C> - reg * H(T*)``, differentiable.

Nothing here depends on mmengine / mmpretrain.
"""
import math
import numbers
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import small
from .implicit import implicit_grads

__all__ = [
    'SinkhornResult', 'sinkhorn_log', 'sinkhorn2', 'sinkhorn2_grad',
    'entropic_ot'
]

_GRAD_MODES = ('autodiff', 'implicit', 'envelope', 'detach')
_METHODS = ('auto', 'log')


class SinkhornResult(NamedTuple):
    """Output of :func:`sinkhorn_log`.

    Attributes:
        plan (Tensor): Transport plan ``T`` of shape ``(..., n, m)``.
        f (Tensor): Row dual potential (cost units) of shape ``(..., n)``.
        g (Tensor): Column dual potential (cost units) of shape ``(..., m)``.
        n_iter (int): Number of Sinkhorn iterations performed (one iteration
            = one ``f`` update followed by one ``g`` update).
        err (Tensor): 0-dim detached tensor, the L1 marginal error of the
            returned plan, ``max(|T 1 - a|_1, |T^T 1 - b|_1)``, maximised
            over the batch (after Sinkhorn iterations the column marginal
            is exact up to rounding, after Newton steps the row marginal).
            Use ``float(err)`` to log it.
    """
    plan: Tensor
    f: Tensor
    g: Tensor
    n_iter: int
    err: Tensor


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _check_args(a: Tensor, b: Tensor, C: Tensor, reg: float, max_iter: int,
                tol: Optional[float],
                check_every: int) -> Tuple[Tensor, Tensor, Tensor, float]:
    """Validate the arguments and cast ``a``, ``b``, ``C`` to one float
    dtype."""
    for name, t in (('a', a), ('b', b), ('C', C)):
        if not isinstance(t, Tensor):
            raise TypeError(f'`{name}` must be a torch.Tensor, got {type(t)}')
    if a.dim() < 1:
        raise ValueError(f'`a` must have shape (..., n), got {tuple(a.shape)}')
    if b.dim() < 1:
        raise ValueError(f'`b` must have shape (..., m), got {tuple(b.shape)}')
    if C.dim() < 2:
        raise ValueError(
            f'`C` must have shape (..., n, m), got {tuple(C.shape)}')
    n, m = C.shape[-2], C.shape[-1]
    if a.shape[-1] != n:
        raise ValueError(f'`a` has {a.shape[-1]} entries on its last dim but '
                         f'`C` has n={n} rows (C.shape={tuple(C.shape)})')
    if b.shape[-1] != m:
        raise ValueError(f'`b` has {b.shape[-1]} entries on its last dim but '
                         f'`C` has m={m} columns (C.shape={tuple(C.shape)})')
    try:
        if a.dim() > 1 or b.dim() > 1 or C.dim() > 2:  # (slow in Python)
            torch.broadcast_shapes(a.shape[:-1], b.shape[:-1], C.shape[:-2])
    except RuntimeError as e:
        raise ValueError(
            'batch dims of `a` (..., n), `b` (..., m) and `C` (..., n, m) are '
            f'not broadcastable: a={tuple(a.shape)}, b={tuple(b.shape)}, '
            f'C={tuple(C.shape)}') from e
    if isinstance(reg, Tensor):
        if reg.numel() != 1:
            raise ValueError('`reg` must be a positive scalar')
        reg = float(reg)
    if not (isinstance(reg, numbers.Real) and math.isfinite(reg) and reg > 0):
        raise ValueError(f'`reg` must be a positive finite number, got {reg}')
    if not (isinstance(max_iter, numbers.Integral) and max_iter >= 1):
        raise ValueError(f'`max_iter` must be an int >= 1, got {max_iter}')
    if not (isinstance(check_every, numbers.Integral) and check_every >= 1):
        raise ValueError(
            f'`check_every` must be an int >= 1, got {check_every}')
    if tol is not None and not isinstance(tol, numbers.Real):
        raise ValueError(f'`tol` must be a number or None, got {tol!r}')
    dtype = torch.result_type(C, a)
    dtype = torch.promote_types(dtype, torch.result_type(C, b))
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    if torch.finfo(dtype).bits < 32:  # half / bfloat16: solve in float32
        dtype = torch.float32
    return a.to(dtype), b.to(dtype), C.to(dtype), float(reg)


def _block_log(F: Tensor, G: Tensor, log_a: Tensor, log_b: Tensor, M: Tensor,
               n: int) -> Tuple[Tensor, Tensor]:
    """``n`` plain log-domain iterations (F: (..., n, 1), G: (..., 1, m))."""
    for _ in range(n):
        F = log_a - torch.logsumexp(M + G, dim=-1, keepdim=True)
        G = log_b - torch.logsumexp(M + F, dim=-2, keepdim=True)
    return F, G


def _scaling_loop(K: Tensor,
                  a_col: Tensor,
                  b_col: Tensor,
                  n: int,
                  keep: bool = False):
    """``n`` scaling iterations ``u = a / (K v)``, ``v = b / (K^T u)`` from
    ``v = 1``. With ``keep`` also returns the lists of ``u_k``, ``v_k`` and
    the denominators ``t_k = K v_{k-1}``, ``s_k = K^T u_k``."""
    Kt = K.mT
    t = K.sum(-1, keepdim=True)  # K @ 1
    u = a_col / t
    s = Kt @ u
    v = b_col / s
    if not keep:
        for _ in range(n - 1):
            u = a_col / (K @ v)
            v = b_col / (Kt @ u)
        return u, v
    us, vs, ts, ss = [u], [v], [t], [s]
    for _ in range(n - 1):
        t = K @ v
        u = a_col / t
        s = Kt @ u
        v = b_col / s
        us.append(u)
        vs.append(v)
        ts.append(t)
        ss.append(s)
    return u, v, (us, vs, ts, ss)


def _sum_to(x: Tensor, shape: torch.Size) -> Tensor:
    """Reduce a broadcast gradient ``x`` to ``shape``."""
    if x.shape == shape:
        return x
    lead = x.dim() - len(shape)
    if lead > 0:
        x = x.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, d in enumerate(shape) if d == 1 and x.shape[i] != 1)
    if dims:
        x = x.sum(dim=dims, keepdim=True)
    return x.reshape(shape)


class _ScalingBlock(torch.autograd.Function):
    """Autograd for a block of scaling iterations with a hand-written
    reverse loop (exact gradient of the unrolled iterations).

    Inputs: ``P = M + F + G`` (..., n, m), ``a_col`` (..., n, 1), ``b_col``
    (..., m, 1). Outputs: ``u``, ``v`` after ``n`` iterations and the
    (non-differentiable) kernel ``K = max(exp(P), tiny)``. The gradient is
    that of the unrolled iterations, except that entries of ``K`` clamped
    at ``tiny`` get ``tiny * Kbar`` instead of 0 (negligible).

    Compared with letting autograd record every mat-vec, the backward runs
    6 small ops per iteration without autograd-engine overhead, and the
    kernel gradient ``sum_k (tbar_k v_{k-1}^T + u_k sbar_k^T)`` is formed
    with two GEMMs at the end instead of one outer product per
    half-iteration.
    """

    @staticmethod
    def forward(ctx, P, a_col, b_col, n, tiny):
        K = torch.exp(P).clamp_min_(tiny)
        u, v, (us, vs, ts, ss) = _scaling_loop(K, a_col, b_col, n, True)
        ctx.save_for_backward(K, a_col, b_col)
        ctx.lists = (us, vs, ts, ss)
        ctx.mark_non_differentiable(K)
        return u, v, K

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gu, gv, _gK):
        K, a_col, b_col = ctx.saved_tensors
        us, vs, ts, ss = ctx.lists
        n = len(us)
        Kt = K.mT
        if gu is None:
            gu = torch.zeros_like(us[-1])
        if gv is None:
            gv = torch.zeros_like(vs[-1])
        # stacked forward vectors, columns k = 0 .. n-1
        T = torch.cat(ts, -1)
        S = torch.cat(ss, -1)
        U = torch.cat(us, -1)
        vbar = gv
        ws, tbars, qs, vbars = [], [], [], []
        for k in range(n - 1, -1, -1):
            # v_k = b / s_k, s_k = K^T u_k: sbar_k = -q_k. Divide first:
            # v_k / s_k alone overflows for (near) zero-mass columns where
            # s_k ~ tiny, while vbar / s_k stays O(1).
            q = vbar / ss[k] * vs[k]
            # u_k feeds s_k (and the output for the last k): ubar_k = -w
            w = K @ q
            if k == n - 1:
                w = w - gu
            # u_k = a / t_k, t_k = K v_{k-1}: tbar_k = -ubar_k u_k / t_k
            tbar = w / ts[k] * us[k]
            qs.append(q)
            vbars.append(vbar)
            ws.append(w)
            tbars.append(tbar)
            vbar = Kt @ tbar  # grad of v_{k-1} (v_{-1} = 1 is constant)
        # back to k = 0 .. n-1 order; abar = sum ubar_k / t_k,
        # bbar = sum vbar_k / s_k
        ws, tbars, qs, vbars = ws[::-1], tbars[::-1], qs[::-1], vbars[::-1]
        gbar_a = -(torch.cat(ws, -1) / T).sum(-1, keepdim=True)
        gbar_b = (torch.cat(vbars, -1) / S).sum(-1, keepdim=True)
        # Kbar = sum_k tbar_k v_{k-1}^T - u_k q_k^T as ONE GEMM over the
        # stacked vectors (v_{-1} = 1)
        left = torch.cat(tbars + [-U], -1)
        right = torch.cat([torch.ones_like(vs[0])] + vs[:-1] + qs, -1)
        # dK/dP = K (exactly 0 for the entries clamped at tiny; using K
        # there changes the gradient by at most tiny * |Kbar|)
        gP = (left @ right.mT).mul_(K)
        gbar_a = _sum_to(gbar_a, a_col.shape)
        gbar_b = _sum_to(gbar_b, b_col.shape)
        return gP, gbar_a, gbar_b, None, None


def _block_scaling(F: Tensor, G: Tensor, a_col: Tensor, b_col: Tensor,
                   M: Tensor, n: int, tiny: float):
    """``n`` iterations in the scaling form with absorbed potentials.

    With ``K = exp(M + F + G)`` (the current plan), the updates
    ``u <- a / (K v)``, ``v <- b / (K^T u)`` are exactly the log-domain
    updates written for ``F + log u`` and ``G + log v``; they only need a
    mat-vec and a division each. ``K`` is floored at ``tiny`` so that no
    denominator is zero.
    """
    P = M + F + G
    if torch.is_grad_enabled() and (P.requires_grad or a_col.requires_grad
                                    or b_col.requires_grad):
        return _ScalingBlock.apply(P, a_col, b_col, n, tiny)
    K = torch.exp(P).clamp_min_(tiny)
    u, v = _scaling_loop(K, a_col, b_col, n)
    return u, v, K


#: ``-min(M)`` up to which the one-kernel float64 loop of
#: :func:`_scaling_float64` is used (``exp(-100) ~ 4e-44``: the scalings stay
#: far inside float64's range)
_FLOAT64_KERNEL_RANGE = 100.0
#: the float64 path is for problems whose time is per-op overhead; larger
#: ones (64 x 8142: 6.2 ms against 3.4 ms) run faster in the float32 blocks
_FLOAT64_MAX_NUMEL = 1 << 17
#: Sinkhorn iterations before Newton steps take over (at the first check at
#: or after it): 20 iterations leave Newton 2-3 steps on the benchmark's
#: 16 x 10 batches (after 10: ~6 steps with halvings; after 30 or 40: more
#: Sinkhorn iterations than the steps they save)
_NEWTON_AFTER = 20


def _newton_float64(X: Tensor, a: Tensor, b: Tensor, G: Tensor, max_iter: int,
                    tol: float) -> Optional[Tuple[Tensor, int]]:
    """Newton's method on the semi-dual (Sinkhorn-Newton, Brauer et al.
    2017), float64, from the column potential ``G`` (``(..., 1, m)``).

    With the rows always balanced (``F = log a - logsumexp_j(X + G)``,
    ``pi`` = the row-softmax of ``X + G``), the column marginal is
    ``c = sum_i a_i pi_i`` and its Jacobian w.r.t. ``G`` is
    ``J = diag(c) - pi^T diag(a) pi`` (m x m, singular along the gauge
    ``1``, fixed by adding ``1 1^T / m``). Each step solves
    ``J delta = b - c``; a step that does not lower the L1 error
    ``|b - c|_1`` is halved (at most 4 times); a singular ``J`` (zero-mass
    entries) gives up. Convergence is quadratic:
    a handful of steps where Sinkhorn needs a hundred iterations.

    Args: ``X = M`` (``(..., n, m)``), ``a`` (``(..., n, 1)``), ``b``
    (``(..., 1, m)``), all float64.

    Returns ``(G, n_steps)`` once the error is ``<= tol``, or ``None`` (no
    progress, non-finite values or ``max_iter`` steps): the caller then
    goes on with Sinkhorn.
    """
    m = X.shape[-1]
    gauge = torch.full((m, m), 1.0 / m, dtype=X.dtype, device=X.device)
    best, G_best, delta, step = math.inf, G, None, 1.0
    for n_step in range(max_iter + 1):
        pi = torch.softmax(X + G, dim=-1)
        api = a * pi
        c = api.sum(-2, keepdim=True)
        r = b - c
        err = float(r.abs().sum(-1).amax())  # one sync per step
        if not math.isfinite(err):
            return None
        if err <= tol:
            return G, n_step
        if err >= best:  # no progress: halve the last step
            step *= 0.5
            if delta is None or step < 1.0 / 16:
                return None
            G = G_best + step * delta
            continue
        if n_step == max_iter:
            return None
        best, G_best, step = err, G, 1.0
        J = torch.diag_embed(c.squeeze(-2)) - pi.mT @ api
        delta, info = torch.linalg.solve_ex(J + gauge, r.mT)
        if bool(info.any()):  # singular (zero-mass entries): leave it
            return None
        delta = delta.mT
        G = G + delta
    return None


def _scaling_float64(M: Tensor, a_col: Tensor, b_col: Tensor, max_iter: int,
                     tol: Optional[float], check_every: int,
                     newton_after: Optional[int] = None):
    """No-autograd fast path for well-conditioned problems: the plain
    scaling iterations ``u = a / (K v)``, ``v = b / (K^T u)`` on one float64
    kernel ``K = exp(M)`` (``M >= -_FLOAT64_KERNEL_RANGE``), with the row
    marginal error ``|u * (K v) - a|_1`` checked every ``check_every``
    iterations from the mat-vec the next update needs anyway.

    The iterates are those of the log-domain loop (in exact arithmetic), but
    there is one ``exp`` in all instead of one per block and no per-block
    bookkeeping: for the small problems of a training step (16 x 10) it is
    several times faster than the blocks of :func:`_sinkhorn_iterations`.

    Returns ``(F, G, n_iter)`` in ``M``'s dtype, or ``None`` when the
    scalings are not finite (the caller then runs the stabilised loop).
    """
    M64 = M.double()
    K = torch.exp(M64)
    Kt = K.mT
    a64, b64 = a_col.double(), b_col.double()
    check = tol is not None and tol > 0
    v = torch.ones_like(b64)
    u = None
    n_iter = 0
    newton = check and newton_after is not None
    while True:
        t = K @ v
        if u is not None and (n_iter % check_every == 0
                              or n_iter == max_iter):
            # marginal error of the current (u, v) and finiteness: one sync
            err = (u * t - a64).abs().sum(-2).amax()
            if not bool(torch.isfinite(err)):
                return None
            if n_iter == max_iter or (check and float(err) <= tol):
                break
            if newton and n_iter >= newton_after:
                newton = False  # one try: Sinkhorn goes on if it fails
                out = _newton_side(M64, a64, b64, u, v, max_iter - n_iter,
                                   tol)
                if out is not None:
                    F, G, steps = out
                    dtype = M.dtype
                    return F.to(dtype), G.to(dtype), n_iter + steps
        u = a64 / t
        v = b64 / (Kt @ u)
        n_iter += 1
    dtype = M.dtype
    return torch.log(u).to(dtype), torch.log(v).mT.to(dtype), n_iter


def _newton_side(X: Tensor, a64: Tensor, b64: Tensor, u: Tensor, v: Tensor,
                 max_iter: int, tol: float):
    """:func:`_newton_float64` on the smaller side of ``X = M`` (float64;
    the m x m system for the column potential, or the n x n one on the
    transposed problem), warm-started from the Sinkhorn scalings ``u``,
    ``v``. Returns ``(F, G, n_steps)`` in float64, or ``None``."""
    n, m = X.shape[-2], X.shape[-1]
    if m <= n:
        out = _newton_float64(X, a64, b64.mT, torch.log(v).mT, max_iter, tol)
        if out is None:
            return None
        G, steps = out
        F = torch.log(a64) - torch.logsumexp(X + G, dim=-1, keepdim=True)
    else:
        out = _newton_float64(X.mT, b64, a64.mT, torch.log(u).mT, max_iter,
                              tol)
        if out is None:
            return None
        F, steps = out
        F = F.mT
        G = (torch.log(b64) - torch.logsumexp(X + F, dim=-2,
                                              keepdim=True).mT).mT
    return F, G, steps


def _sinkhorn_iterations(a: Tensor, b: Tensor, M: Tensor, max_iter: int,
                         tol: Optional[float], check_every: int,
                         method: str) -> Tuple[Tensor, Tensor, int]:
    """Core loop on the scaled potentials ``F = f / reg``, ``G = g / reg``.

    Iterations run in blocks of ``check_every``. With ``method='log'`` every
    update is a log-sum-exp. With ``method='auto'`` a block is run in the
    scaling form with the potentials absorbed in the kernel at the start of
    the block (Schmitzer's log-stabilised Sinkhorn): the iterates are the
    same as the log-domain ones in exact arithmetic, at the cost of one
    ``exp`` per block instead of two per iteration. A block whose scalings
    ``u``, ``v`` leave a safe range (``|log u| > 0.25 |log tiny|``, i.e. the
    potentials moved a lot, e.g. at the start with tiny ``reg``) makes the
    next block use log-domain updates; a block with non-finite scalings
    (or, when autograd records, any unsafe block) is discarded and
    recomputed in the log domain.

    Args:
        a (Tensor): Row marginal ``(..., n)``.
        b (Tensor): Column marginal ``(..., m)``.
        M (Tensor): ``-C / reg`` ``(..., n, m)``.

    Returns:
        tuple: ``F (..., n, 1)``, ``G (..., 1, m)`` and the number of
        iterations.
    """
    finfo = torch.finfo(M.dtype)
    tiny = finfo.tiny
    a_col = a.clamp_min(tiny).unsqueeze(-1)  # (..., n, 1)
    b_col = b.clamp_min(tiny).unsqueeze(-1)  # (..., m, 1)
    log_a = torch.log(a_col)
    log_b = torch.log(b_col).mT  # (..., 1, m)
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1], M.shape[:-2])
    check = tol is not None and tol > 0
    safe = 0.25 * -math.log(tiny)

    # M <= 0 has a 0 in every row and column (see _solve), so the first
    # scaling block from F = G = 0 has no all-underflowed row / column.
    F = M.new_zeros(batch + (M.shape[-2], 1))
    G = M.new_zeros(batch + (1, M.shape[-1]))
    n_iter = 0
    use_log = method == 'log'
    track_grad = torch.is_grad_enabled() and any(t.requires_grad
                                                 for t in (a, b, M))
    if not track_grad and not use_log and M.numel() <= _FLOAT64_MAX_NUMEL:
        span, min_mass = torch.stack([
            -M.amin(), torch.minimum(a_col.amin(), b_col.amin())
        ]).tolist()  # one sync
        if span <= _FLOAT64_KERNEL_RANGE:
            # Newton needs positive masses (its system is singular on zero
            # masses, whose plan rows Sinkhorn keeps at finfo.tiny)
            fast = _scaling_float64(
                M, a_col, b_col, max_iter, tol, check_every,
                newton_after=_NEWTON_AFTER if min_mass > tiny else None)
            if fast is not None:
                return fast
    while n_iter < max_iter:
        n = min(check_every - n_iter % check_every, max_iter - n_iter)
        if not use_log:
            u, v, K = _block_scaling(F, G, a_col, b_col, M, n, tiny)
            log_u, log_v = torch.log(u), torch.log(v)
            with torch.no_grad():
                stats = torch.stack([
                    log_u.abs().amax(),
                    log_v.abs().amax(),
                    (u * (K @ v) - a_col).abs().sum(-2).amax()
                ]).tolist()  # single host sync per block
            # with autograd, a block that moved the potentials by more than
            # `safe` is redone in the log domain: its exact backward
            # multiplies by exp(|log u|) factors that overflow in float32
            limit = safe if track_grad else math.inf
            if all(math.isfinite(x) and x <= limit for x in stats[:2]):
                F = F + log_u
                G = G + log_v.mT
                n_iter += n
                use_log = max(stats[:2]) > safe
                if check and stats[2] <= tol:
                    break
                continue
        F, G = _block_log(F, G, log_a, log_b, M, n)
        n_iter += n
        use_log = method == 'log'
        if check:  # blocks end at multiples of check_every or max_iter
            with torch.no_grad():
                err = (torch.logsumexp(M + F + G, dim=-1, keepdim=True).exp() -
                       a_col).abs().sum(-2).amax()
            if bool(err <= tol):  # single host sync per check
                break
    return F, G, n_iter


class _Small(NamedTuple):
    u: np.ndarray  # scalings of the shifted problem, plan = u_i K_ij v_j
    v: np.ndarray
    plan: np.ndarray
    n_iter: int
    C: np.ndarray  # float64 copy of C
    shifts: Tuple[np.ndarray, np.ndarray]  # row and column shifts / reg

    def potentials(self):
        """Scaled potentials ``F`` (n,), ``G`` (m,) of the original C."""
        r, c = self.shifts
        return np.log(self.u) + r, np.log(self.v) + c


def _solve_small(a: Tensor, b: Tensor, C: Tensor, reg: float, max_iter: int,
                 tol: Optional[float], check_every: int,
                 method: str) -> Optional[_Small]:
    """:func:`_solve` in numpy (:mod:`.small`) for an unbatched CPU problem
    of at most ``small.SMALL_MAX_NUMEL`` entries that nothing records
    autograd for and whose shifted cost range is at most
    ``_FLOAT64_KERNEL_RANGE * reg``; ``None`` otherwise (or when the
    scalings are not finite), the caller then solves in torch. Same
    iterations and stopping rule as the torch fast path; the plan is
    formed in float64. Arguments as returned by :func:`_check_args`."""
    if (method != 'auto' or C.dim() != 2 or a.dim() != 1 or b.dim() != 1
            or C.device.type != 'cpu' or C.numel() > small.SMALL_MAX_NUMEL
            or (torch.is_grad_enabled()
                and (a.requires_grad or b.requires_grad or C.requires_grad))):
        return None
    tiny = torch.finfo(C.dtype).tiny
    C64 = C.detach().numpy().astype(np.float64)
    r = C64.min(1, keepdims=True)
    Cs = C64 - r
    c = Cs.min(0, keepdims=True)
    M = (Cs - c) / -reg
    if not -M.min() <= _FLOAT64_KERNEL_RANGE:  # also NaN
        return None
    # masses floored at the dtype's tiny, as in the torch loop (u, v > 0)
    a64 = np.maximum(a.detach().numpy().astype(np.float64), tiny)
    b64 = np.maximum(b.detach().numpy().astype(np.float64), tiny)
    out = small.solve(M, a64, b64, max_iter, tol, check_every,
                      _NEWTON_AFTER if min(a64.min(), b64.min()) > tiny
                      else None)
    if out is None:
        return None
    u, v, K, n_iter = out
    return _Small(u, v, u[:, None] * K * v, n_iter, C64,
                  (r[:, 0] / reg, c[0] / reg))


def _solve(a, b, C, reg, max_iter, tol, check_every, method,
           try_small=True):
    a, b, C, reg = _check_args(a, b, C, reg, max_iter, tol, check_every)
    if method not in _METHODS:
        raise ValueError(f'`method` must be one of {_METHODS}, got {method!r}')
    sm = _solve_small(a, b, C, reg, max_iter, tol, check_every,
                      method) if try_small else None
    if sm is not None:
        dtype = C.dtype
        plan = sm.plan
        # both marginals (Sinkhorn ends exact on the columns, Newton on
        # the rows), against the unfloored masses
        err = max(np.abs(plan.sum(1) - a.detach().numpy()).sum(),
                  np.abs(plan.sum(0) - b.detach().numpy()).sum())
        F, G, plan = (torch.from_numpy(x).to(dtype)
                      for x in (*sm.potentials(), plan))
        return (a, b, C, reg, F, G, plan, sm.n_iter,
                torch.tensor(err, dtype=dtype))
    # The plan is invariant to C_ij -> C_ij - r_i - c_j (absorbed in the
    # potentials). Removing the row then column minima keeps the scaled
    # potentials small (better float32 accuracy when C has large separable
    # offsets, e.g. -log-probabilities) and leaves M = -C' / reg <= 0 with
    # a 0 in every row and every column (a row's minimiser j has c_j = 0).
    r = C.amin(-1, keepdim=True)
    Cs = C - r
    c = Cs.amin(-2, keepdim=True)
    M = (Cs - c) / (-reg)
    F, G, n_iter = _sinkhorn_iterations(a, b, M, max_iter, tol, check_every,
                                        method)
    plan = torch.exp(M + F + G)
    F, G = (F + r / reg).squeeze(-1), (G + c / reg).squeeze(-2)
    with torch.no_grad():
        # both marginals: Sinkhorn ends exact on the columns, Newton on
        # the rows
        err = torch.maximum((plan.sum(-1) - a).abs().sum(-1).amax(),
                            (plan.sum(-2) - b).abs().sum(-1).amax())
    return a, b, C, reg, F, G, plan, n_iter, err


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def sinkhorn_log(a: Tensor,
                 b: Tensor,
                 C: Tensor,
                 reg: float,
                 max_iter: int = 200,
                 tol: Optional[float] = 1e-6,
                 check_every: int = 10,
                 method: str = 'auto') -> SinkhornResult:
    """Log-domain Sinkhorn for entropic OT (batched, differentiable).

    Solves ``min_T <T, C> - reg * H(T)`` s.t. ``T 1 = a``, ``T^T 1 = b`` with
    ``H(T) = -sum T log T``. The returned plan is
    ``T_ij = exp((f_i + g_j - C_ij) / reg)``. Autograd flows through the
    iterations when grad mode is enabled (see :func:`sinkhorn2` /
    :func:`entropic_ot` for the cheaper envelope gradients).

    Iterations (``F = f / reg``, ``G = g / reg``, ``M = -C / reg``)::

        F <- log a - logsumexp_j(M_ij + G_j)
        G <- log b - logsumexp_i(M_ij + F_i)

    ``method='log'`` evaluates every update with log-sum-exp.
    ``method='auto'`` (default) runs the same iterations in blocks of
    ``check_every``: at the start of a block the potentials are absorbed in
    the kernel ``K = exp(M + F + G)`` (the current plan) and the block uses
    the scaling form ``u <- a / (K v)``, ``v <- b / (K^T u)`` (a mat-vec
    and a division per half-iteration), then ``F += log u``,
    ``G += log v``. In exact arithmetic the iterates are identical to the
    log-domain ones (kernel entries below ``finfo.tiny`` aside). A block
    whose scalings leave a safe range (potentials still moving by more than
    ``0.25 |log finfo.tiny|``, e.g. the first iterations with a tiny
    ``reg``) is followed by a log-domain block, and a block with non-finite
    scalings (with autograd recording: any such unsafe block, whose exact
    backward could overflow) is discarded and redone in the log domain, so
    ``'auto'`` is as stable as ``'log'`` and several times faster. Its
    autograd graph only stores vectors per iteration plus one kernel per
    block, and the backward through a block is a hand-written reverse loop
    (exact gradient of the unrolled iterations).

    Without autograd (the solves behind ``grad='implicit'`` / ``'envelope'``
    and :func:`sinkhorn2_grad`), ``'auto'`` has a fast path for small
    problems (at most 2^17 entries, e.g. 16 x 10 or 128 x 100, whose time is
    per-op overhead) whose shifted cost range is at most ``100 * reg``
    (e.g. the paper's costs in ``[0, 3]`` at ``reg = 0.1``): the scaling
    iterations run on a single float64 kernel, and when ``tol > 0`` and the
    first 20 iterations have not converged, Newton steps on the dual
    potential of the smaller side take over from the Sinkhorn iterate
    (Sinkhorn-Newton: an m x m solve per step, quadratic convergence;
    ``n_iter`` then counts Sinkhorn iterations plus Newton steps). A
    training batch of 16 against 10 prototypes converges to 1e-6 in ~22
    (20 + 2-3 Newton steps) instead of ~60 Sinkhorn iterations (without
    the float64 kernel the old blocks needed ~84, and 10 % of the batches
    hit the 200-iteration cap). Newton steps that make no progress, or a
    singular system (zero-mass entries), hand back to the Sinkhorn loop, so
    the fixed point is the same; with ``tol=None`` the iterates are exactly
    the Sinkhorn ones. Unbatched CPU problems of at most
    ``small.SMALL_MAX_NUMEL`` entries run these same iterations in numpy
    (:mod:`mmot.ot.small`: ~0.5-1 us per call against torch's 1-4 us; the
    16 x 10 value and implicit gradient of :func:`sinkhorn2_grad` 2-3x
    faster, see ``tools/bench_sinkhorn.py``), the plan then formed in
    float64.

    Before iterating, the row minima and then the column minima of ``C``
    are subtracted (the plan is invariant to such separable shifts; the
    returned ``f``, ``g`` are those of the original ``C``). This keeps the
    scaled potentials small and leaves a zero cost in every row and column,
    so no row or column of the first kernel ``exp(-C' / reg)`` underflows.

    Stopping: at the end of every block of ``check_every`` iterations (and
    at ``max_iter``) the L1 error of the row marginal ``|T 1 - a|_1``
    (maximum over the batch) is computed on device and compared with ``tol``
    with a single host sync per block; the loop stops as soon as it is
    ``<= tol``. After each iteration the column marginal is exact, so this
    is the full marginal violation (Newton steps check the column marginal,
    the rows being exact, once per step). ``tol=None`` or ``0`` runs exactly
    ``max_iter`` iterations (with ``method='log'`` this makes no host sync
    at all; ``'auto'`` still syncs once per block). ``a`` and ``b`` must
    have the same total mass, otherwise the error cannot go below the mass
    gap.

    Inputs in float16 / bfloat16 are solved (and returned) in float32.
    Zero entries of ``a`` / ``b`` are supported: they are floored at
    ``finfo.tiny`` so the corresponding plan rows/columns are numerically
    zero (``<= finfo.tiny``) and the potentials and gradients stay finite
    (the autodiff gradient w.r.t. an exactly-zero mass is 0). Float32 and
    float64 are supported; in float32 the exponents ``(f + g - C) / reg``
    carry an absolute rounding error of about ``6e-8 * max|C'| / reg``
    (``C'`` the shifted cost), so use float64 for extreme cost ranges over
    ``reg``.

    Args:
        a (Tensor): Source marginal, shape ``(..., n)``, non-negative.
        b (Tensor): Target marginal, shape ``(..., m)`` or ``(m,)`` shared
            across the batch, non-negative, same mass as ``a``.
        C (Tensor): Cost matrix, shape ``(..., n, m)``. The leading (batch)
            dims of ``a``, ``b`` and ``C`` are broadcast together.
        reg (float): Entropic regularisation ``lambda > 0`` (paper: 0.1).
        max_iter (int): Maximum number of iterations (paper: 200).
            Defaults to 200.
        tol (float, optional): Tolerance on the L1 marginal error.
            Defaults to 1e-6.
        check_every (int): Block length: check the stopping criterion every
            this many iterations. Defaults to 10.
        method (str): ``'auto'`` or ``'log'``, see above. Defaults to
            ``'auto'``.

    Returns:
        SinkhornResult: ``(plan, f, g, n_iter, err)``, see
        :class:`SinkhornResult`.
    """
    _, _, _, reg, F, G, plan, n_iter, err = _solve(a, b, C, reg, max_iter, tol,
                                                   check_every, method)
    return SinkhornResult(plan, F * reg, G * reg, n_iter, err)


def _value_from_plan(plan: Tensor, C: Tensor, F: Tensor, G: Tensor, reg: float,
                     regularised: bool) -> Tensor:
    if not regularised:
        return (plan * C).sum((-2, -1))
    # <T, C> + reg * sum T log T with reg * log T_ij = f_i + g_j - C_ij
    # = reg * (<T 1, F> + <T^T 1, G>); no log of a zero entry is taken.
    return reg * ((plan.sum(-1) * F).sum(-1) + (plan.sum(-2) * G).sum(-1))


def _ot_value(a, b, C, reg, max_iter, tol, check_every, method, grad,
              regularised):
    if grad not in _GRAD_MODES:
        raise ValueError(f'`grad` must be one of {_GRAD_MODES}, got {grad!r}')
    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, Tensor) and t.requires_grad for t in (a, b, C))
    if grad == 'autodiff' and needs_grad:
        _, _, C_, reg_, F, G, plan, _, _ = _solve(a, b, C, reg, max_iter, tol,
                                                  check_every, method)
        return _value_from_plan(plan, C_, F, G, reg_, regularised)

    with torch.no_grad():
        _, _, C_, reg_, F, G, plan, _, _ = _solve(a, b, C, reg, max_iter, tol,
                                                  check_every, method)
        value = _value_from_plan(plan, C_, F, G, reg_, regularised)
    if grad == 'detach' or not needs_grad:
        return value

    if grad == 'implicit' and not regularised:
        # exact gradients of <T*, C> by implicit differentiation of the
        # fixed point (see implicit.py); for the regularised objective the
        # envelope gradients below are already exact.
        with torch.no_grad():
            # the (n, m) gradient w.r.t. C only when C needs it (at 64 x
            # 8142 its float64 products were most of a backward w.r.t. a)
            ga, gb, gC = implicit_grads(a, b, C_, plan, reg_,
                                        wrt_cost=C.requires_grad)
        dtype = value.dtype
        for t, g, dims in ((a, ga, (-1, )), (b, gb, (-1, )),
                           (C, gC, (-2, -1))):
            if t.requires_grad:
                t_ = t.to(dtype)
                value = value + ((t_ - t_.detach()) * g).sum(dims)
        return value

    # Envelope (Danskin) gradients attached with the "detach trick": each
    # added term is exactly zero in the forward pass and has gradient
    # f - mean(f), g - mean(g) or T* w.r.t. a, b or C (autograd reduces
    # broadcast batch dims, e.g. for a shared b of shape (m,)).
    with torch.no_grad():
        f = F * reg_
        g = G * reg_
        f = f - f.mean(-1, keepdim=True)
        g = g - g.mean(-1, keepdim=True)
    dtype = value.dtype
    if a.requires_grad:
        a_ = a.to(dtype)
        value = value + ((a_ - a_.detach()) * f).sum(-1)
    if b.requires_grad:
        b_ = b.to(dtype)
        value = value + ((b_ - b_.detach()) * g).sum(-1)
    if C.requires_grad:
        C_ = C.to(dtype)
        value = value + ((C_ - C_.detach()) * plan).sum((-2, -1))
    return value


def sinkhorn2(a: Tensor,
              b: Tensor,
              C: Tensor,
              reg: float,
              max_iter: int = 200,
              tol: Optional[float] = 1e-6,
              check_every: int = 10,
              grad: str = 'autodiff',
              method: str = 'auto') -> Tensor:
    """Entropic OT transport cost ``<T*, C>`` (as POT's ``ot.sinkhorn2``).

    ``T*`` is the entropic plan of :func:`sinkhorn_log`; the returned value
    does NOT include the entropy term (see :func:`entropic_ot` for that).

    Gradient modes (``grad``):

    * ``'autodiff'``: exact gradient of the computed value w.r.t. ``a``,
      ``b`` and ``C`` by back-propagating through the unrolled iterations
      (memory grows with the number of iterations: a few vectors per
      iteration and one ``(..., n, m)`` kernel per block with
      ``method='auto'``, two ``(..., n, m)`` buffers per iteration with
      ``method='log'``).
    * ``'implicit'``: exact gradient of ``<T*, C>`` at the fixed point by
      implicit differentiation (:mod:`mmot.ot.implicit`): the loop runs
      under ``no_grad``, then one small linear solve (the Schur complement
      on the smaller side, e.g. K x K). As exact as ``'autodiff'`` at
      convergence (agrees to ~1e-13 in float64), as cheap as
      ``'envelope'``, no memory per iteration. For :func:`entropic_ot` it
      is the envelope gradient, which is exact for that objective.
    * ``'envelope'``: the loop runs under ``no_grad`` and the gradients are
      attached from the dual solution (Danskin / envelope theorem):
      ``d/da = f - mean(f)``, ``d/db = g - mean(g)``, ``d/dC = T*``.
      These are the exact gradients (at the optimum, i.e. up to the solver
      tolerance) of the *regularised* objective
      ``<T*, C> - reg * H(T*)`` (see :func:`entropic_ot`), with the ``a`` /
      ``b`` parts projected on the tangent space of the simplex (removing
      the mean; the uncentered gradient is only defined up to a constant
      since ``sum a = sum b`` is required, and a constant shift is
      annihilated anyway by a softmax parametrisation of ``a``). For the
      transport cost ``<T*, C>`` returned here they are NOT exact: they
      omit the derivative of the entropy term and converge to the exact
      ones only as ``reg -> 0``. They cost one forward solve and no
      backward through the loop.
    * ``'detach'``: no gradient (the output does not require grad).

    Args:
        a (Tensor): Source marginal ``(..., n)``.
        b (Tensor): Target marginal ``(..., m)`` or ``(m,)``.
        C (Tensor): Cost ``(..., n, m)``.
        reg (float): Entropic regularisation ``lambda`` (paper: 0.1).
        max_iter (int): Maximum number of iterations. Defaults to 200.
        tol (float, optional): L1 marginal-error tolerance. Defaults to 1e-6.
        check_every (int): Stopping-test period / block length.
            Defaults to 10.
        grad (str): ``'autodiff'``, ``'implicit'``, ``'envelope'`` or
            ``'detach'``. Defaults to ``'autodiff'``.
        method (str): ``'auto'`` or ``'log'`` (see :func:`sinkhorn_log`).
            Defaults to ``'auto'``.

    Returns:
        Tensor: Transport cost of shape ``(...)`` (broadcast batch shape).
    """
    return _ot_value(a, b, C, reg, max_iter, tol, check_every, method, grad,
                     False)


def sinkhorn2_grad(a: Tensor,
                   b: Tensor,
                   C: Tensor,
                   reg: float,
                   max_iter: int = 200,
                   tol: Optional[float] = 1e-6,
                   check_every: int = 10,
                   grad: str = 'implicit',
                   method: str = 'auto') -> Tuple[Tensor, Tensor]:
    """:func:`sinkhorn2` and its gradient w.r.t. ``a``, without autograd.

    For a caller that applies the chain rule itself (e.g. a weight vector
    whose batch measure is a softmax or a renormalisation): no graph is
    recorded, so a training step pays for the solve and one small linear
    solve only. ``grad`` picks the gradient as in :func:`sinkhorn2`:
    ``'implicit'`` (exact for ``<T*, C>``, the default), ``'envelope'``
    (``f - mean(f)``, exact for the regularised objective) or
    ``'autodiff'`` (back-propagation through the iterations).

    Returns:
        tuple: The transport cost ``(...)`` and its gradient w.r.t. ``a``
        ``(..., n)``, centred (projected on the simplex's tangent space,
        like :func:`sinkhorn2`'s), both detached.
    """
    if grad not in ('implicit', 'envelope', 'autodiff'):
        raise ValueError("`grad` must be 'implicit', 'envelope' or "
                         f"'autodiff', got {grad!r}")
    if grad == 'autodiff':
        with torch.enable_grad():
            a_ = a.detach().requires_grad_(True)
            value = sinkhorn2(a_, b, C.detach(), reg, max_iter, tol,
                              check_every, 'autodiff', method)
            (ga, ) = torch.autograd.grad(value.sum(), a_)
        return value.detach(), ga - ga.mean(-1, keepdim=True)
    with torch.no_grad():
        a_, b_, C_, reg_ = _check_args(a, b, C, reg, max_iter, tol,
                                       check_every)
        sm = _solve_small(a_, b_, C_, reg_, max_iter, tol, check_every,
                          method)
        if sm is not None:
            dtype = C_.dtype
            value = torch.tensor((sm.plan * sm.C).sum(), dtype=dtype)
            if grad == 'implicit':
                ga = small.implicit_grad_a(sm.C, sm.plan)
                if ga is None:  # zero masses: eliminated in the torch code
                    ga = implicit_grads(a_, b_, C_, torch.from_numpy(sm.plan),
                                        reg_, wrt_cost=False)[0]
                    return value, ga.to(dtype)
            else:
                ga = sm.potentials()[0] * reg_
                ga = ga - ga.mean()
            return value, torch.from_numpy(ga).to(dtype)
        # (the numpy path was tried above)
        a_, b_, C_, reg_, F, _, plan, _, _ = _solve(a_, b_, C_, reg_, max_iter,
                                                    tol, check_every, method,
                                                    try_small=False)
        value = (plan * C_).sum((-2, -1))
        if grad == 'implicit':
            ga = implicit_grads(a_, b_, C_, plan, reg_, wrt_cost=False)[0]
        else:
            f = F * reg_
            ga = f - f.mean(-1, keepdim=True)
    return value, ga.to(value.dtype)


def entropic_ot(a: Tensor,
                b: Tensor,
                C: Tensor,
                reg: float,
                max_iter: int = 200,
                tol: Optional[float] = 1e-6,
                check_every: int = 10,
                grad: str = 'autodiff',
                method: str = 'auto') -> Tensor:
    """Regularised entropic OT objective ``<T*, C> - reg * H(T*)``.

    ``H(T) = -sum_ij T_ij log T_ij`` (paper's convention, no ``-1`` term);
    evaluated as ``sum_ij T*_ij (f_i + g_j)``, which equals
    ``<a, f> + <b, g>`` at convergence. With ``grad='envelope'`` the
    attached gradients (``f - mean f``, ``g - mean g``, ``T*``) are the
    exact gradients of this objective at the optimum (``a``/``b`` parts
    centered), so they can be compared one-to-one with the centered
    ``grad='autodiff'`` gradients.

    Args:
        a (Tensor): Source marginal ``(..., n)``.
        b (Tensor): Target marginal ``(..., m)`` or ``(m,)``.
        C (Tensor): Cost ``(..., n, m)``.
        reg (float): Entropic regularisation ``lambda``.
        max_iter (int): Maximum number of iterations. Defaults to 200.
        tol (float, optional): L1 marginal-error tolerance. Defaults to 1e-6.
        check_every (int): Stopping-test period. Defaults to 10.
        grad (str): ``'autodiff'``, ``'implicit'``, ``'envelope'`` or
            ``'detach'``. Defaults to ``'autodiff'``.
        method (str): ``'auto'`` or ``'log'``. Defaults to ``'auto'``.

    Returns:
        Tensor: Regularised objective of shape ``(...)``.
    """
    return _ot_value(a, b, C, reg, max_iter, tol, check_every, method, grad,
                     True)
