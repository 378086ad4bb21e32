# Copyright (c) mmot contributors. All rights reserved.
"""Exact gradients of the transport cost <T*, C> by implicit
differentiation of the Sinkhorn fixed point (pure torch).

At the entropic optimum ``T_ij = exp((f_i + g_j - C_ij) / reg)`` with
``T 1 = a`` and ``T^T 1 = b``. Differentiating these two conditions gives
the symmetric system ``H [df; dg] = reg [da; db]`` with
``H = [[diag(a), T], [T^T, diag(b)]]``, and ``d<C,T> = (p.df + q.dg)/reg``
with ``p = (C*T) 1``, ``q = (C*T)^T 1``. Hence, with ``H [s; t] = [p; q]``::

    d<T*,C>/da = s,   d<T*,C>/db = t,
    d<T*,C>/dC = T * (1 + (s_i + t_j - C_ij) / reg).

``H`` is singular only along the gauge ``(1, -1)`` (to which ``[p; q]`` is
orthogonal), so the system is reduced to its Schur complement on the
smaller side (K x K for a batch against K prototypes) and solved with the
gauge fixed. This is exact at convergence, costs one small linear solve and
needs no backward pass through the Sinkhorn iterations.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


#: a marginal entry below this fraction of the largest counts as zero mass
_ZERO_MASS = 1e-12


def _solve_gauged(S: Tensor, rhs: Tensor, degenerate: bool) -> Tensor:
    """Solve ``S x = rhs`` with the gauge direction ``1`` fixed (``S`` is
    singular along it). ``degenerate``: both marginals have zero-mass
    entries, ``S`` may be singular beyond the gauge; take the least-squares
    (pseudo-inverse) solution."""
    k = S.shape[-1]
    ones = torch.ones(k, dtype=S.dtype, device=S.device)
    S = S + ones.outer(ones) / k
    if degenerate:
        return (torch.linalg.pinv(S, hermitian=True)
                @ rhs.unsqueeze(-1)).squeeze(-1)
    return torch.linalg.solve(S, rhs)


def implicit_grads(plan, reg: float, wrt_cost: bool = True
                   ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Gradients of ``<T, C>`` w.r.t. ``a``, ``b`` and ``C`` at the entropic
    optimum ``T``, given as a plan object of :mod:`.kernels`
    (:class:`~.kernels.DensePlan`: ``(..., n, m)`` in memory;
    :class:`~.kernels.RowBlockPlan`: streamed over row blocks, whose
    reduced system is always the ``m x m`` one). The ``a`` and ``b`` parts
    are centred (projected on the simplex's tangent space), like the
    envelope gradients, in the plan object's dtype. The ``C`` part needs a
    dense plan; with ``wrt_cost=False`` it is not formed (``None``)."""
    # the marginals of the computed plan (equal to a, b up to the tolerance)
    ra, rb, p, q = plan.sums()
    tiny = torch.finfo(ra.dtype).tiny
    ra, rb = ra.clamp_min(tiny), rb.clamp_min(tiny)
    n, m = plan.n, plan.m
    # Solve on the smaller side, unless that side has (numerically) zero
    # masses: two zero-mass rows make the reduced matrix exactly singular,
    # while eliminating them is harmless (their gradient comes out 0, as
    # autograd's for an exactly-zero mass). One host sync.
    zero_a, zero_b = (torch.stack([
        (ra <= _ZERO_MASS * ra.amax(-1, keepdim=True)).any(),
        (rb <= _ZERO_MASS * rb.amax(-1, keepdim=True)).any()]).tolist())
    eliminate_s = (m <= n and not zero_b) or (zero_a and not zero_b) \
        or not plan.can_transpose
    if eliminate_s:  # (diag(b) - T^T diag(1/a) T) t = q - T^T (p / a)
        W, w = plan.schur(ra, p)
        t = _solve_gauged(torch.diag_embed(rb) - W, q - w, zero_b)
        s = (p - plan.matvec(t)) / ra
    else:  # (diag(a) - T diag(1/b) T^T) s = p - T (q / b)
        P = plan.T
        W, w = P.schur(rb, q)
        s = _solve_gauged(torch.diag_embed(ra) - W, p - w, zero_a)
        t = (q - P.matvec(s)) / rb
    ga = s - s.mean(-1, keepdim=True)
    gb = t - t.mean(-1, keepdim=True)
    if not wrt_cost:
        return ga, gb, None
    return ga, gb, plan.cost_grad(s, t, reg)
