# Copyright (c) mmot contributors. All rights reserved.
"""The two ways an entropic OT problem is held while it is solved (pure
torch): :class:`DenseProblem` (the ``(..., n, m)`` kernel in memory,
batched, autograd-aware) and :class:`RowBlockProblem` (an ``N x M`` cost
streamed over row blocks, for a measure over a whole training set).

Both hold ``M = -C' / reg`` (``C'`` the cost, shifted for the dense one) and
the marginals, and expose the same primitives, which the one solver of
:mod:`.solver` (Sinkhorn iterations, Newton steps, the implicit gradient)
is written against:

* ``sinkhorn(F, G, n, check)``: ``n`` Sinkhorn iterations on the scaled
  potentials ``F = f / reg`` (``(..., n)``), ``G = g / reg`` (``(..., m)``),
  ``F <- log a - logsumexp_j(M_ij + G_j)``,
  ``G <- log b - logsumexp_i(M_ij + F_i)``; returns ``(F, G, err)`` with
  ``err`` the L1 row-marginal error (see each class for which iterate).
* ``balance_rows(G)``, ``balance_cols(F)``: one half-iteration.
* ``column_marginal(G)``, ``column_jacobian(G, c, aux)``: with the rows
  balanced, the column marginal ``c`` and its Jacobian w.r.t. ``G``,
  ``J = diag(c) - T^T diag(1/a) T`` (Newton's system).
* ``plan(F, G)`` (row blocks; a dense plan is formed by the caller in the
  input's dtype and wrapped in :class:`DensePlan`): an object with
  ``sums()``, ``schur()`` and ``matvec()`` (the pieces of the implicit
  gradient, :mod:`.implicit`).
* ``T`` (dense only): the transposed problem, for Newton steps and the
  implicit solve on the smaller side.
"""
import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['DenseProblem', 'RowBlockProblem', 'DensePlan', 'RowBlockPlan']


# --------------------------------------------------------------------------- #
# dense: the iterations in the scaling form, with an exact custom backward
# --------------------------------------------------------------------------- #
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


class DenseProblem:
    """``M = -C' / reg`` of shape ``(..., n, m)`` in memory, with the
    marginals ``a`` (``(..., n)``) and ``b`` (``(..., m)``), floored at
    ``mass_floor`` so that no scaling divides by zero (a zero mass gets a
    numerically zero plan row).

    :meth:`sinkhorn` runs a block of iterations in the scaling form with
    the potentials absorbed in the kernel at the start of the block
    (Schmitzer's log-stabilised Sinkhorn): ``K = exp(M + F + G)`` (the
    current plan), then ``u <- a / (K v)``, ``v <- b / (K^T u)`` (a mat-vec
    and a division per half-iteration) and ``F += log u``, ``G += log v``.
    The iterates are the log-domain ones in exact arithmetic, at one
    ``exp`` per block instead of two per iteration. A block whose scalings
    leave a safe range (``|log u| > 0.25 |log tiny|``: the potentials moved
    a lot, e.g. at the start with a tiny ``reg``) makes the next block use
    log-sum-exp updates; a block with non-finite scalings (or, when
    autograd records, any unsafe block: its exact backward multiplies by
    ``exp(|log u|)`` factors) is discarded and redone in the log domain.
    ``method='log'`` uses log-sum-exp updates throughout. When autograd
    records, the scaling block has an exact hand-written backward
    (:class:`_ScalingBlock`). ``err`` is the L1 row-marginal error of the
    returned iterate (the columns are exact after an iteration).
    """
    can_transpose = True

    def __init__(self, M: Tensor, a: Tensor, b: Tensor, method: str = 'auto',
                 track_grad: bool = False,
                 mass_floor: Optional[float] = None):
        self.M, self.method, self.track_grad = M, method, track_grad
        self.tiny = torch.finfo(M.dtype).tiny
        self.mass_floor = self.tiny if mass_floor is None else mass_floor
        self.a = a.to(M.dtype).clamp_min(self.mass_floor)
        self.b = b.to(M.dtype).clamp_min(self.mass_floor)
        self.a_col, self.b_col = self.a.unsqueeze(-1), self.b.unsqueeze(-1)
        self.log_a = torch.log(self.a_col)  # (..., n, 1)
        self.log_b = torch.log(self.b_col).mT  # (..., 1, m)
        self.n, self.m = M.shape[-2], M.shape[-1]
        self.use_log = method == 'log'
        self.safe = 0.25 * -math.log(self.tiny)

    @property
    def T(self) -> 'DenseProblem':
        return DenseProblem(self.M.mT, self.b, self.a, self.method,
                            self.track_grad, self.mass_floor)

    def sinkhorn(self, F: Tensor, G: Tensor, n: int,
                 check: bool) -> Tuple[Tensor, Tensor, Optional[float]]:
        Fc, Gr = F.unsqueeze(-1), G.unsqueeze(-2)
        if not self.use_log:
            u, v, K = self._scaling_block(Fc + Gr, n)
            log_u, log_v = torch.log(u), torch.log(v)
            with torch.no_grad():
                stats = torch.stack([
                    log_u.abs().amax(),
                    log_v.abs().amax(),
                    (u * (K @ v) - self.a_col).abs().sum(-2).amax()
                ]).tolist()  # single host sync per block
            limit = self.safe if self.track_grad else math.inf
            if all(math.isfinite(x) and x <= limit for x in stats[:2]):
                self.use_log = max(stats[:2]) > self.safe
                return ((Fc + log_u).squeeze(-1), (Gr + log_v.mT).squeeze(-2),
                        stats[2])
        for _ in range(n):
            Fc = self.log_a - torch.logsumexp(self.M + Gr, dim=-1,
                                              keepdim=True)
            Gr = self.log_b - torch.logsumexp(self.M + Fc, dim=-2,
                                              keepdim=True)
        self.use_log = self.method == 'log'
        err = None
        if check:
            with torch.no_grad():
                err = float((torch.logsumexp(self.M + Fc + Gr, dim=-1,
                                             keepdim=True).exp() -
                             self.a_col).abs().sum(-2).amax())
        return Fc.squeeze(-1), Gr.squeeze(-2), err

    def _scaling_block(self, FG: Tensor, n: int):
        P = self.M + FG
        if torch.is_grad_enabled() and (P.requires_grad
                                        or self.a_col.requires_grad
                                        or self.b_col.requires_grad):
            return _ScalingBlock.apply(P, self.a_col, self.b_col, n,
                                       self.tiny)
        K = torch.exp(P).clamp_min_(self.tiny)
        u, v = _scaling_loop(K, self.a_col, self.b_col, n)
        return u, v, K

    def balance_rows(self, G: Tensor) -> Tensor:
        return (self.log_a - torch.logsumexp(
            self.M + G.unsqueeze(-2), dim=-1, keepdim=True)).squeeze(-1)

    def balance_cols(self, F: Tensor) -> Tensor:
        return (self.log_b - torch.logsumexp(
            self.M + F.unsqueeze(-1), dim=-2, keepdim=True)).squeeze(-2)

    def column_marginal(self, G: Tensor):
        pi = torch.softmax(self.M + G.unsqueeze(-2), dim=-1)  # T = a pi
        api = self.a_col * pi
        return api.sum(-2), (pi, api)

    def column_jacobian(self, G: Tensor, c: Tensor, aux) -> Tensor:
        pi, api = aux
        return torch.diag_embed(c) - pi.mT @ api

class DensePlan:
    """A plan ``T`` (``(..., n, m)``) in memory with its cost ``C``, as the
    implicit gradient (:func:`.implicit.implicit_grads`) reads it; its
    pieces in ``dtype`` (float64 unless told otherwise)."""
    can_transpose = True

    def __init__(self, plan: Tensor, C: Tensor,
                 dtype: torch.dtype = torch.float64):
        self.P = plan.to(dtype)
        self.C = C.to(dtype).expand_as(self.P)
        self.n, self.m = plan.shape[-2], plan.shape[-1]

    @property
    def T(self) -> 'DensePlan':
        return DensePlan(self.P.mT, self.C.mT, self.P.dtype)

    def sums(self):
        """``T 1``, ``T^T 1``, ``(C*T) 1``, ``(C*T)^T 1``."""
        CT = self.C * self.P
        return self.P.sum(-1), self.P.sum(-2), CT.sum(-1), CT.sum(-2)

    def schur(self, ra: Tensor, p: Tensor) -> Tuple[Tensor, Tensor]:
        """``T^T diag(1/ra) T`` and ``T^T (p / ra)``."""
        Ta = self.P / ra.unsqueeze(-1)
        return self.P.mT @ Ta, (Ta.mT @ p.unsqueeze(-1)).squeeze(-1)

    def matvec(self, t: Tensor) -> Tensor:
        return (self.P @ t.unsqueeze(-1)).squeeze(-1)

    def cost_grad(self, s: Tensor, t: Tensor, reg: float) -> Tensor:
        """``d<T*, C>/dC = T * (1 + (s_i + t_j - C_ij) / reg)``."""
        return self.P * (1.0 + (s.unsqueeze(-1) + t.unsqueeze(-2) - self.C) /
                         reg)


# --------------------------------------------------------------------------- #
# row blocks: an N x M problem whose cost is computed block by block
# --------------------------------------------------------------------------- #
class RowBlockProblem:
    """An ``N x M`` problem whose cost rows ``start:stop`` come from
    ``cost_block(start, stop)``; the blocks are kept (as float64
    ``M = -C / reg``, 8 bytes an entry) when they fit ``cache_bytes``, else
    recomputed at every pass. Every quantity the solver needs is a sum over
    rows accumulated block by block, in float64; unbatched, ``a`` positive.

    :meth:`sinkhorn` does both half-iterations in one pass per iteration and
    one ``exp`` per entry: with ``E = exp(M + G - rowmax)`` the row update is
    ``F = log a - rowmax - log(E 1)``, and the plan of the new rows is
    ``T = E * (a / E 1)`` (each entry at most ``a_i``), so the column update
    is ``G <- G + log b - log(T^T 1)`` with ``T^T 1`` one matrix-vector
    product (the log-domain update, written with the plan's column sums; a
    pass whose column sums underflow is redone with log-sum-exp). Its
    ``err`` is the row-marginal error of the iterate *before* the last row
    update, which the row update gives for free,
    ``sum_i |a_i - a_i exp(F_i_old - F_i_new)|``.
    """
    can_transpose = False

    def __init__(self, a: Tensor, b: Tensor,
                 cost_block: Callable[[int, int], Tensor], reg: float,
                 block_rows: int, cache_bytes: int, dtype: torch.dtype):
        d64 = torch.float64
        self.n, self.m = a.shape[0], b.shape[0]
        self.reg, self.block_rows, self.dtype = reg, block_rows, dtype
        self.cost_block = cost_block
        self.a, self.b = a.to(d64), b.to(d64)
        self.log_a, self.log_b = torch.log(self.a), torch.log(self.b)
        self.device = a.device
        self.cached = self.n * self.m * 8 <= cache_bytes
        self._cache = []

    def blocks(self):
        """``(start, stop, M)`` of each row block, ``M = -C / reg``
        float64."""
        for i, s in enumerate(range(0, self.n, self.block_rows)):
            e = min(self.n, s + self.block_rows)
            if i < len(self._cache):
                yield s, e, self._cache[i]
                continue
            C = self.cost_block(s, e)
            if C.shape != (e - s, self.m):
                raise ValueError(f'global_ot: cost_block({s}, {e}) has shape '
                                 f'{tuple(C.shape)}, expected '
                                 f'{(e - s, self.m)}')
            # (not in place: .to() returns the caller's tensor when it is
            # float64 already)
            M = C.to(self.dtype).to(torch.float64) / -self.reg
            if self.cached:
                self._cache.append(M)
            yield s, e, M

    def _zeros(self, *shape):
        return torch.zeros(shape, dtype=torch.float64, device=self.device)

    def _rows(self, s: int, e: int, M: Tensor, G: Tensor):
        """Row potentials of a block and its plan, one ``exp``."""
        X = M + G
        mx = X.amax(1, keepdim=True)
        E = X.sub_(mx).exp_()
        rs = E.sum(1)
        F = self.log_a[s:e] - mx.squeeze(1) - torch.log(rs)
        return F, E.mul_((self.a[s:e] / rs)[:, None])

    def sinkhorn(self, F: Tensor, G: Tensor, n: int,
                 check: bool) -> Tuple[Tensor, Tensor, float]:
        F = F.clone()
        tiny = torch.finfo(torch.float64).tiny
        for _ in range(n):
            cols = self._zeros(self.m)
            err = self._zeros()
            for s, e, M in self.blocks():
                F_new, T = self._rows(s, e, M, G)
                err += (self.a[s:e] * (1 - torch.exp(F[s:e] - F_new))).abs(
                ).sum()
                F[s:e] = F_new
                cols += T.sum(0)
            if bool((cols > tiny).all()):
                G = G + self.log_b - torch.log(cols)
            else:  # a column holds (numerically) no mass: log-sum-exp
                G = self.balance_cols(F)
        return F, G, float(err)

    def balance_rows(self, G: Tensor) -> Tensor:
        F = self._zeros(self.n)
        for s, e, M in self.blocks():
            F[s:e] = self.log_a[s:e] - torch.logsumexp(M + G, dim=1)
        return F

    def balance_cols(self, F: Tensor) -> Tensor:
        lse = torch.full((self.m, ), -math.inf, dtype=torch.float64,
                         device=self.device)
        for s, e, M in self.blocks():
            lse = torch.logaddexp(lse, torch.logsumexp(M + F[s:e, None],
                                                       dim=0))
        return self.log_b - lse

    def column_marginal(self, G: Tensor):
        c = self._zeros(self.m)
        for s, e, M in self.blocks():
            c += self._rows(s, e, M, G)[1].sum(0)
        return c, None

    def column_jacobian(self, G: Tensor, c: Tensor, aux) -> Tensor:
        J = torch.diag(c)
        for s, e, M in self.blocks():
            T = self._rows(s, e, M, G)[1]
            J -= T.t() @ (T / self.a[s:e, None])
        return J

    def plan(self, F: Tensor, G: Tensor) -> 'RowBlockPlan':
        return RowBlockPlan(self, F, G)


class RowBlockPlan:
    """The plan ``exp(M + F + G)`` of a :class:`RowBlockProblem`, never
    formed: each method is one pass over the row blocks."""
    can_transpose = False

    def __init__(self, problem: RowBlockProblem, F: Tensor, G: Tensor):
        self.problem, self.F, self.G = problem, F, G
        self.n, self.m = problem.n, problem.m

    def _blocks(self):
        reg = self.problem.reg
        for s, e, M in self.problem.blocks():
            yield s, e, M * -reg, torch.exp(M + self.F[s:e, None] +
                                            self.G[None, :])

    def sums(self):
        z = self.problem._zeros
        ra, p, rb, q = z(self.n), z(self.n), z(self.m), z(self.m)
        for s, e, C, T in self._blocks():
            CT = C * T
            ra[s:e], p[s:e] = T.sum(1), CT.sum(1)
            rb += T.sum(0)
            q += CT.sum(0)
        return ra, rb, p, q

    def schur(self, ra: Tensor, p: Tensor) -> Tuple[Tensor, Tensor]:
        W, w = self.problem._zeros(self.m, self.m), self.problem._zeros(self.m)
        for s, e, _, T in self._blocks():
            Ta = T / ra[s:e, None]
            W += T.t() @ Ta
            w += Ta.t() @ p[s:e]
        return W, w

    def matvec(self, t: Tensor) -> Tensor:
        out = self.problem._zeros(self.n)
        for s, e, _, T in self._blocks():
            out[s:e] = T @ t
        return out
