# Copyright (c) mmot contributors. All rights reserved.
"""The Sinkhorn solver of the OT re-weighting authors' code (pure torch).

What their ``SinkhornDistance`` computes (read from the public repository
DandanGuo1993/reweight-imbalance-classification-with-OT; not the paper's
converged solver in :mod:`mmot.ot.sinkhorn`):

* log-domain potentials in cost units, both starting at 0;
* each iteration updates the potential of the *meta* side Q first, then
  the one of the batch side, with ``log(p + 1e-8)`` for both marginals;
* it stops after the first iteration whose change of the Q-side potential,
  ``sum_j |g_j - g_j_prev|``, is below ``thresh`` (0.1), or after
  ``max_iter`` (200) iterations;
* the value is the transport cost ``<pi, C>`` of the plan of the last
  potentials (not marginal-feasible: it stops early, typically after 2-5
  iterations on the CIFAR-LT batches), and its gradient is whatever autograd
  gives through the iterations run (the stopping test itself is not
  differentiated).

This is the solver of the authors' recipe (``solver='authors'`` of
:class:`mmot.ot.reweighter.OTReweighter`). Nothing here depends on mmengine.
"""
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ['AuthorsSinkhornResult', 'sinkhorn_authors']

#: added to both marginals inside the logarithm, as in the authors' code
LOG_EPS = 1e-8


class AuthorsSinkhornResult(NamedTuple):
    value: Tensor  #: ``<pi, C>`` (differentiable)
    plan: Tensor   #: ``pi`` (n, m)
    n_iter: int    #: iterations run


def sinkhorn_authors(a: Tensor, b: Tensor, C: Tensor, reg: float,
                     max_iter: int = 200,
                     thresh: float = 0.1) -> AuthorsSinkhornResult:
    """Entropic OT between ``a`` (n,) and ``b`` (m,) with cost ``C``
    (n, m), iterated and stopped as the authors' code does.

    ``a`` is the batch measure P(w), ``b`` the meta measure Q (their code
    puts Q on the rows of its cost; here C is (batch, meta) like the rest of
    mmot, which transposes nothing in the arithmetic). One iteration::

        g <- reg * (log(b + 1e-8) - logsumexp_i((f_i + g_j - C_ij) / reg)) + g
        f <- reg * (log(a + 1e-8) - logsumexp_j((f_i + g_j - C_ij) / reg)) + f

    stopping when ``sum_j |g_new - g_old| < thresh``. Autograd through the
    unrolled iterations gives the gradient (w.r.t. ``a``, ``b`` and ``C``).

    Args:
        a (Tensor): Batch marginal (n,).
        b (Tensor): Meta marginal (m,).
        C (Tensor): Cost (n, m).
        reg (float): Entropic regulariser (their ``eps``: 0.1).
        max_iter (int): Iterations at most. Defaults to 200.
        thresh (float): Stopping threshold on the L1 change of the meta-side
            potential. Defaults to 0.1.

    Returns:
        AuthorsSinkhornResult: value ``<pi, C>``, plan and iteration count.
    """
    if C.dim() != 2 or a.shape != C.shape[:1] or b.shape != C.shape[1:]:
        raise ValueError(f'sinkhorn_authors: a {tuple(a.shape)}, b '
                         f'{tuple(b.shape)} and C {tuple(C.shape)} must be '
                         '(n,), (m,) and (n, m)')
    if not reg > 0:
        raise ValueError(f'sinkhorn_authors: reg must be > 0, got {reg}')
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError('sinkhorn_authors: max_iter must be an int >= 1, '
                         f'got {max_iter!r}')
    if not thresh > 0:
        raise ValueError(f'sinkhorn_authors: thresh must be > 0, got {thresh}')
    log_a = torch.log(a + LOG_EPS)
    log_b = torch.log(b + LOG_EPS)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    n_iter = 0
    for _ in range(max_iter):
        g_old = g
        M = (f[:, None] + g[None, :] - C) / reg
        g = reg * (log_b - torch.logsumexp(M, dim=0)) + g
        M = (f[:, None] + g[None, :] - C) / reg
        f = reg * (log_a - torch.logsumexp(M, dim=1)) + f
        n_iter += 1
        if float((g - g_old).detach().abs().sum()) < thresh:
            break
    plan = torch.exp((f[:, None] + g[None, :] - C) / reg)
    return AuthorsSinkhornResult((plan * C).sum(), plan, n_iter)
