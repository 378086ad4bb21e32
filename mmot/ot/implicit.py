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


def implicit_grads(a: Tensor, b: Tensor, C: Tensor, plan: Tensor,
                   reg: float, wrt_cost: bool = True
                   ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Gradients of ``<plan, C>`` w.r.t. ``a``, ``b`` and ``C`` at the
    entropic optimum ``plan`` (shapes ``(..., n)``, ``(..., m)``,
    ``(..., n, m)``). The ``a`` and ``b`` parts are centred (projected on the
    simplex's tangent space), like the envelope gradients. With
    ``wrt_cost=False`` the ``C`` part is not formed (``None``)."""
    dtype = plan.dtype
    T = plan.double()
    Cd = C.double().expand_as(T)
    tiny = torch.finfo(torch.float64).tiny
    # the marginals of the computed plan (equal to a, b up to the tolerance)
    ra = T.sum(-1).clamp_min(tiny)
    rb = T.sum(-2).clamp_min(tiny)
    CT = Cd * T
    p, q = CT.sum(-1), CT.sum(-2)
    n, m = T.shape[-2], T.shape[-1]
    # Solve on the smaller side, unless that side has (numerically) zero
    # masses: two zero-mass rows make the reduced matrix exactly singular,
    # while eliminating them is harmless (their gradient comes out 0, as
    # autograd's for an exactly-zero mass). One host sync.
    zero_a, zero_b = (torch.stack([
        (ra <= _ZERO_MASS * ra.amax(-1, keepdim=True)).any(),
        (rb <= _ZERO_MASS * rb.amax(-1, keepdim=True)).any()]).tolist())
    eliminate_s = (m <= n and not zero_b) or (zero_a and not zero_b)
    if eliminate_s:  # (diag(b) - T^T diag(1/a) T) t = q - T^T (p / a)
        Ta = T / ra.unsqueeze(-1)
        S = torch.diag_embed(rb) - T.mT @ Ta
        rhs = q - (Ta.mT @ p.unsqueeze(-1)).squeeze(-1)
        t = _solve_gauged(S, rhs, zero_b)
        s = (p - (T @ t.unsqueeze(-1)).squeeze(-1)) / ra
    else:  # (diag(a) - T diag(1/b) T^T) s = p - T (q / b)
        Tb = T / rb.unsqueeze(-2)
        S = torch.diag_embed(ra) - Tb @ T.mT
        rhs = p - (Tb @ q.unsqueeze(-1)).squeeze(-1)
        s = _solve_gauged(S, rhs, zero_a)
        t = (q - (T.mT @ s.unsqueeze(-1)).squeeze(-1)) / rb
    ga = s - s.mean(-1, keepdim=True)
    gb = t - t.mean(-1, keepdim=True)
    if not wrt_cost:
        return ga.to(dtype), gb.to(dtype), None
    gC = T * (1.0 + (s.unsqueeze(-1) + t.unsqueeze(-2) - Cd) / reg)
    return ga.to(dtype), gb.to(dtype), gC.to(dtype)
