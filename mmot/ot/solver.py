# Copyright (c) mmot contributors. All rights reserved.
"""The one Sinkhorn(-Newton) loop of mmot, written against the problem
primitives of :mod:`.kernels` (a dense batched kernel or an ``N x M`` cost
streamed over row blocks).

* Sinkhorn iterations in blocks of ``check_every``, stopping once the
  L1 marginal error is ``<= tol``;
* from the first check at or after ``newton_after`` iterations, one try of
  Newton's method on the semi-dual potential of the smaller side
  (Sinkhorn-Newton, Brauer et al. 2017): an ``m x m`` solve per step,
  quadratic convergence, where Sinkhorn needs hundreds or thousands of
  iterations (costs clustered by class, class masses far from the
  target's). Newton steps that stop making progress, or a singular system
  (zero masses), hand back to the Sinkhorn iterations from the best
  iterate, so the fixed point is the same.

Nothing here depends on mmengine / mmpretrain.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ['iterate', 'newton']

#: halvings of a Newton step that does not lower the error before Newton
#: gives up (and Sinkhorn goes on from the best iterate). Weakly coupled
#: blocks (features clustered by class) make J nearly singular beyond the
#: gauge and the first full step overshoot by orders of magnitude (12380 x
#: 10: |delta| ~ 1e5); halving down to it is still cheaper than the
#: thousands of Sinkhorn iterations it replaces.
MAX_HALVINGS = 30


def newton(problem, G: Tensor, max_steps: int,
           tol: float) -> Tuple[Tensor, float, int, bool]:
    """Newton's method on the column potential ``G`` (``(..., m)``) with the
    rows balanced (``F = F(G)``): the column marginal ``c(G)`` and its
    Jacobian ``J = diag(c) - T^T diag(1/a) T`` (singular along the gauge
    ``1``, fixed by adding ``1 1^T / m``) come from
    ``problem.column_marginal`` / ``column_jacobian``; each step solves
    ``J delta = b - c``. A step that does not lower ``|b - c|_1`` (maximum over the batch) is halved,
    at most ``MAX_HALVINGS`` times.

    Returns ``(G, err, steps, converged)``: the best iterate, its column
    error, the number of steps taken (each one system evaluation) and
    whether ``err <= tol``.
    """
    m = G.shape[-1]
    gauge = torch.full((m, m), 1.0 / m, dtype=G.dtype, device=G.device)
    best, G_best, delta, step, steps = math.inf, G, None, 1.0, 0
    while True:
        # the marginal first: the (N x m x m) Jacobian only for a step
        # that is kept (not for halvings, nor at convergence)
        c, aux = problem.column_marginal(G)
        r = problem.b - c
        err = float(r.abs().sum(-1).amax())  # one sync per step
        if not math.isfinite(err):
            return G_best, best, steps, False
        if err <= tol:
            return G, err, steps, True
        if err >= best:  # no progress: halve the last step
            step *= 0.5
            if delta is None or step < 0.5**MAX_HALVINGS \
                    or steps >= max_steps:
                return G_best, best, steps, False
            G = G_best + step * delta
            steps += 1
            continue
        best, G_best, step = err, G, 1.0
        if steps >= max_steps:
            return G, err, steps, False
        J = problem.column_jacobian(G, c, aux)
        delta, info = torch.linalg.solve_ex(J + gauge, r.unsqueeze(-1))
        if bool(info.any()):  # singular (zero-mass entries)
            return G_best, best, steps, False
        delta = delta.squeeze(-1)
        G = G + delta
        steps += 1


def iterate(problem, F: Tensor, G: Tensor, max_iter: int,
            tol: Optional[float], check_every: int,
            newton_after: Optional[int]) -> Tuple[Tensor, Tensor, int, float]:
    """Solve ``problem`` from the scaled potentials ``F``, ``G``.

    Sinkhorn iterations run in blocks ending at multiples of
    ``check_every`` (and at ``max_iter``); after each block the loop stops
    if the error is ``<= tol``. With ``tol`` set and ``newton_after`` not
    None, the first check at or after ``newton_after`` iterations hands
    over to :func:`newton` on the smaller side (the rows' potential on the
    transposed problem when ``n < m`` and the problem can be transposed);
    each Newton step counts as an iteration. ``tol=None`` (or 0) runs
    exactly ``max_iter`` Sinkhorn iterations.

    Returns ``(F, G, n_iter, err)``; ``err`` is the last error the loop
    saw (``inf`` if it computed none).
    """
    check = tol is not None and tol > 0
    try_newton = check and newton_after is not None
    n_iter, err = 0, math.inf
    while n_iter < max_iter:
        n = min(check_every - n_iter % check_every, max_iter - n_iter)
        F, G, e = problem.sinkhorn(F, G, n, check)
        n_iter += n
        err = math.inf if e is None else e
        if check and err <= tol:
            break
        if try_newton and n_iter >= newton_after and n_iter < max_iter:
            try_newton = False  # one try: Sinkhorn goes on if it fails
            rows = problem.can_transpose and problem.n < problem.m
            side = problem.T if rows else problem
            X, err, steps, ok = newton(side, F if rows else G,
                                       max_iter - n_iter, tol)
            n_iter += steps
            if rows:
                F, G = X, side.balance_rows(X)
            else:
                F, G = problem.balance_rows(X), X
            if ok:
                break
            # hand back in the state a Sinkhorn iteration leaves (columns
            # exact), which the row error of the next block assumes
            G = problem.balance_cols(F)
    return F, G, n_iter, err
