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

import torch
from torch import Tensor

from .implicit import implicit_grads
from .kernels import DensePlan, DenseProblem
from .solver import iterate

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


#: the float64 Sinkhorn-Newton path is for problems whose time is per-op
#: overhead (16 x 10, 128 x 100); larger ones (64 x 8142: 6.2 ms against
#: 3.4 ms) run faster in the input's float32
_FLOAT64_MAX_NUMEL = 1 << 17
#: largest shifted cost range / reg of a float32 problem on that path
_FLOAT64_COST_RANGE = 100.0
#: Sinkhorn iterations before Newton steps take over (at the first check at
#: or after it): 20 iterations leave Newton 2-3 steps on the benchmark's
#: 16 x 10 batches (after 10: ~6 steps with halvings; after 30 or 40: more
#: Sinkhorn iterations than the steps they save)
_NEWTON_AFTER = 20
#: Newton steps only when the smaller side has at most this many entries:
#: a step costs ~n m^2 + m^3 against n m for a Sinkhorn iteration (1
#: thread, value + implicit gradient: 16 x 10 0.95 ms with Newton, 1.23
#: without; 128 x 100 2.84 ms with, 1.96 without)
_NEWTON_MAX_SIDE = 32


def _dense_plan(plan: Tensor, C: Tensor) -> DensePlan:
    """The plan for the implicit gradient: float64 pieces for small problems
    (their cost is per-op overhead) and float64 inputs; a large float32
    problem keeps float32 (64 x 8142: 1.7 ms instead of 5.9, gradient
    within 4e-7 of the float64 one, below the float32 solve's own error)."""
    small = plan.numel() <= _FLOAT64_MAX_NUMEL
    return DensePlan(plan, C, torch.float64 if small else plan.dtype)


def _solve(a, b, C, reg, max_iter, tol, check_every, method):
    """Validate, shift the cost, pick the route (the dispatch rule below),
    run :func:`.solver.iterate`; returns the checked ``a, b, C, reg``, the
    scaled potentials ``F`` (..., n), ``G`` (..., m) of the original ``C``,
    the plan, the iteration count and the marginal error (0-dim)."""
    a, b, C, reg = _check_args(a, b, C, reg, max_iter, tol, check_every)
    if method not in _METHODS:
        raise ValueError(f'`method` must be one of {_METHODS}, got {method!r}')
    # The plan is invariant to C_ij -> C_ij - r_i - c_j (absorbed in the
    # potentials). Removing the row then column minima keeps the scaled
    # potentials small (better float32 accuracy when C has large separable
    # offsets, e.g. -log-probabilities) and leaves M = -C' / reg <= 0 with
    # a 0 in every row and every column (a row's minimiser j has c_j = 0),
    # so the first kernel exp(M) has no all-underflowed row or column.
    r = C.amin(-1, keepdim=True)
    Cs = C - r
    c = Cs.amin(-2, keepdim=True)
    M = (Cs - c) / (-reg)
    dtype = M.dtype
    tiny = torch.finfo(dtype).tiny
    track_grad = torch.is_grad_enabled() and any(t.requires_grad
                                                 for t in (a, b, M))
    # Dispatch rule. Without autograd, small problems (their time is per-op
    # overhead) are solved in float64, with Newton steps once the first
    # blocks have not converged when the smaller side is short (a 16 x 10
    # batch: 20 iterations + 2-3 steps instead of ~60 iterations; at 128 x
    # 100 the steps cost more than the iterations they save); Newton needs
    # positive masses (its system is singular on zero masses, whose plan
    # rows Sinkhorn keeps at finfo.tiny). Everything else (autograd: the
    # unrolled gradient is that of the Sinkhorn iterates; large problems;
    # method='log') runs the Sinkhorn blocks in the input's dtype.
    fast = (method == 'auto' and not track_grad
            and M.numel() <= _FLOAT64_MAX_NUMEL)
    newton_after = None
    if fast:
        span, min_mass = torch.stack([
            -M.amin(), torch.minimum(a.amin(), b.amin()).to(dtype)
        ]).tolist()  # one sync
        # the plan is formed again in the input's dtype from the float64
        # potentials: beyond a shifted cost range of 100 reg, float32
        # exponents lose what float64 gained (its column marginal, exact
        # after a float32 half-iteration, would be off by 1e-5 and more)
        fast = span <= _FLOAT64_COST_RANGE or dtype == torch.float64
    if fast:
        problem = DenseProblem(M.double(), a.double(), b.double(), method,
                               mass_floor=tiny)
        if min_mass > tiny and min(M.shape[-2:]) <= _NEWTON_MAX_SIDE:
            newton_after = _NEWTON_AFTER
    else:
        problem = DenseProblem(M, a, b, method, track_grad)
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1], M.shape[:-2])
    F = problem.M.new_zeros(batch + (M.shape[-2], ))
    G = problem.M.new_zeros(batch + (M.shape[-1], ))
    F, G, n_iter, _ = iterate(problem, F, G, max_iter, tol, check_every,
                              newton_after)
    F, G = F.to(dtype), G.to(dtype)
    plan = torch.exp(M + F.unsqueeze(-1) + G.unsqueeze(-2))
    F, G = F + r.squeeze(-1) / reg, G + c.squeeze(-2) / reg
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
    and :func:`sinkhorn2_grad`), ``'auto'`` solves small problems (at most
    2^17 entries, e.g. 16 x 10 or 128 x 100, whose time is per-op
    overhead) in float64, and when ``tol > 0`` and the first 20 iterations
    have not converged, Newton steps on the dual potential of the smaller
    side take over from the Sinkhorn iterate (Sinkhorn-Newton: an m x m
    solve per step, quadratic convergence; ``n_iter`` then counts Sinkhorn
    iterations plus Newton steps). A training batch of 16 against 10
    prototypes converges to 1e-6 in ~22 (20 + 2-3 Newton steps) instead of
    ~60 Sinkhorn iterations. Newton steps that make no progress, or a
    singular system (zero-mass entries), hand back to the Sinkhorn loop, so
    the fixed point is the same; with ``tol=None`` the iterates are exactly
    the Sinkhorn ones. The loop, the Newton steps and the implicit gradient
    are those of :mod:`mmot.ot.solver` / :mod:`mmot.ot.implicit`, shared
    with the whole-training-set solver :func:`mmot.ot.global_ot.global_ot`
    (the same primitives on a cost streamed over row blocks,
    :mod:`mmot.ot.kernels`).

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
            ga, gb, gC = implicit_grads(_dense_plan(plan, C_), reg_,
                                        wrt_cost=C.requires_grad)
        dtype = value.dtype
        for t, g, dims in ((a, ga, (-1, )), (b, gb, (-1, )),
                           (C, gC, (-2, -1))):
            if t.requires_grad:
                g = g.to(dtype)
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
        a_, b_, C_, reg_, F, _, plan, _, _ = _solve(a, b, C, reg, max_iter,
                                                    tol, check_every, method)
        value = (plan * C_).sum((-2, -1))
        if grad == 'implicit':
            ga = implicit_grads(_dense_plan(plan, C_), reg_,
                                wrt_cost=False)[0]
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
