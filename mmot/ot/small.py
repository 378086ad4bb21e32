# Copyright (c) mmot contributors. All rights reserved.
"""The no-autograd Sinkhorn(-Newton) solve of :mod:`.sinkhorn` for one small
problem on the CPU, in numpy (float64).

A training step solves one 16 x 10 problem. At that size a solve is a few
hundred tiny array operations, and their cost is per-call overhead: about
0.5-1 us per numpy call against 1-4 us per torch call on the 2-core CPU this
was measured on, so the solve and its implicit gradient run 2-3x faster here
(the ``sinkhorn2_grad`` rows of ``tools/bench_sinkhorn.py``, with and
without this path). The
algorithm is the one of the torch fast path (``_scaling_float64``): scaling
iterations on one float64 kernel, Newton steps on the smaller side's dual
potential once the first blocks have not converged, the same stopping test
and fall-backs. :mod:`.sinkhorn` calls :func:`solve` for unbatched CPU
problems of at most ``SMALL_MAX_NUMEL`` entries when nothing records
autograd; everything else (batches, GPUs, autograd, extreme cost ranges)
stays in torch.

All arrays are float64 numpy arrays; ``a`` (n,), ``b`` (m,), ``M`` (n, m)
is ``-C' / reg`` with ``C'`` the shifted cost (``M <= 0``, a zero in every
row and column).
"""
import math
from typing import NamedTuple, Optional

import numpy as np

#: largest problem (n * m) solved here; larger ones stay in torch, whose
#: threaded kernels catch up with the per-call overhead. ``python
#: tools/bench_sinkhorn.py --shapes 16x10,128x100,64x1000 --threads 2``,
#: sinkhorn2_grad here / torch only: 0.18 / 0.48 ms, 0.42 / 0.80 ms,
#: 0.89 / 1.38 ms
SMALL_MAX_NUMEL = 1 << 16


class SmallSolve(NamedTuple):
    """Result of :func:`solve`: the scalings ``u`` (n,), ``v`` (m,) with
    plan ``u_i K_ij v_j``, ``K = exp(M)``, and the iteration count (Sinkhorn
    iterations plus Newton steps)."""
    u: np.ndarray
    v: np.ndarray
    K: np.ndarray
    n_iter: int


def _newton(K: np.ndarray, a: np.ndarray, b: np.ndarray, v: np.ndarray,
            max_iter: int, tol: float):
    """Newton's method on the column scalings ``v`` (``G = log v``), rows
    balanced (``pi = diag(1 / K v) K diag(v)``): the column marginal is
    ``c = v * K^T (a / K v)`` and its Jacobian w.r.t. ``G`` is
    ``J = diag(c) - pi^T diag(a) pi`` (singular along ``1``, fixed by adding
    ``1 1^T / m``). A step that does not lower ``|b - c|_1`` is halved (at
    most 4 times). Returns ``(v, n_steps)`` at ``|b - c|_1 <= tol`` or
    ``None`` (no progress, non-finite or singular, ``max_iter`` steps)."""
    m = K.shape[1]
    Kt = K.T
    gauge = np.full((m, m), 1.0 / m)
    best, v_best, delta, step = math.inf, v, None, 1.0
    for n_step in range(max_iter + 1):
        t = K @ v
        at = a / t
        c = v * (Kt @ at)
        r = b - c
        err = float(np.abs(r).sum())
        if not math.isfinite(err):
            return None
        if err <= tol:
            return v, n_step
        if err >= best:  # no progress: halve the last step
            step *= 0.5
            if delta is None or step < 1.0 / 16:
                return None
            v = v_best * np.exp(step * delta)
            continue
        if n_step == max_iter:
            return None
        best, v_best, step = err, v, 1.0
        # pi^T diag(a) pi = diag(v) K^T diag(a / t^2) K diag(v)
        A = Kt @ (K * (at / t)[:, None])
        J = np.diag(c) - v[:, None] * A * v[None, :]
        try:
            delta = np.linalg.solve(J + gauge, r)
        except np.linalg.LinAlgError:  # zero-mass entries
            return None
        v = v * np.exp(delta)
    return None


def solve(M: np.ndarray, a: np.ndarray, b: np.ndarray, max_iter: int,
          tol: Optional[float], check_every: int,
          newton_after: Optional[int]) -> Optional[SmallSolve]:
    """Scaling iterations ``u = a / (K v)``, ``v = b / (K^T u)`` with the row
    marginal error ``|u * (K v) - a|_1`` checked every ``check_every``
    iterations; from the first check at or after ``newton_after``
    iterations (``None``: never) one try of Newton steps on the smaller
    side. ``None`` when the scalings are not finite (the caller falls back
    to the torch loop)."""
    K = np.exp(M)
    Kt = K.T
    check = tol is not None and tol > 0
    n, m = K.shape
    # preallocated iterates, updated in place (np.dot(..., out=): 1.8 us
    # per iteration instead of 2.4)
    u, v, t, s = np.ones(n), np.ones(m), np.empty(n), np.empty(m)
    n_iter = 0
    newton = check and newton_after is not None
    while True:
        np.dot(K, v, out=t)
        if n_iter > 0 and (n_iter % check_every == 0 or n_iter == max_iter):
            err = float(np.abs(u * t - a).sum())
            if not math.isfinite(err):
                return None
            if n_iter == max_iter or (check and err <= tol):
                break
            if newton and n_iter >= newton_after:
                newton = False  # one try: Sinkhorn goes on if it fails
                if m <= n:
                    out = _newton(K, a, b, v, max_iter - n_iter, tol)
                    if out is not None:
                        v, steps = out
                        return SmallSolve(a / (K @ v), v, K, n_iter + steps)
                else:
                    out = _newton(Kt, b, a, u, max_iter - n_iter, tol)
                    if out is not None:
                        u, steps = out
                        return SmallSolve(u, b / (Kt @ u), K, n_iter + steps)
        np.divide(a, t, out=u)
        np.dot(u, K, out=s)
        np.divide(b, s, out=v)
        n_iter += 1
    return SmallSolve(u, v, K, n_iter)


def implicit_grad_a(C: np.ndarray, plan: np.ndarray) -> Optional[np.ndarray]:
    """Gradient of ``<plan, C>`` w.r.t. ``a`` at the entropic optimum,
    centred (:func:`.implicit.implicit_grads`, solved on the smaller side).
    ``None`` when a marginal of the plan has (numerically) zero entries or
    the system is singular: the torch version handles those."""
    ra, rb = plan.sum(1), plan.sum(0)
    if ra.min() <= 1e-12 * ra.max() or rb.min() <= 1e-12 * rb.max():
        return None
    CT = C * plan
    p, q = CT.sum(1), CT.sum(0)
    n, m = plan.shape
    try:
        if m <= n:  # (diag(rb) - T^T diag(1/ra) T) t = q - T^T (p / ra)
            Ta = plan / ra[:, None]
            S = np.diag(rb) - plan.T @ Ta + 1.0 / m
            t = np.linalg.solve(S, q - Ta.T @ p)
            s = (p - plan @ t) / ra
        else:  # (diag(ra) - T diag(1/rb) T^T) s = p - T (q / rb)
            Tb = plan / rb[None, :]
            S = np.diag(ra) - Tb @ plan.T + 1.0 / n
            s = np.linalg.solve(S, p - Tb @ q)
    except np.linalg.LinAlgError:
        return None
    return s - s.mean()
