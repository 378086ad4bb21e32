# Copyright (c) mmot contributors. All rights reserved.
"""Post-hoc corrections of a classifier's predictions on a whole test set.

Pure torch (no mmengine / mmpretrain). Three corrections, all applied to the
(N, K) prediction matrix of the *whole* evaluated set:

* :func:`logit_adjust_posthoc` - post-hoc logit adjustment (Menon et al.,
  ICLR 2021; Eq. (6) of Peng et al., ICLR 2022).
* :func:`ot_posthoc` - the OT correction of Peng et al., "Optimal Transport
  for Long-Tailed Recognition with Learnable Cost Matrix", ICLR 2022,
  Eq. (11) solved by Algorithm 1 (in the log domain, their Eq. (13)-(14)).
* :func:`otlm_fit` / :func:`otlm_apply` - OTLM, the same paper's Eq. (12):
  a K x K linear map ``W`` (initialised to the identity) on the logits is
  learnt by minimising the entropic OT objective on unlabelled predictions,
  and the OT correction is then applied to the mapped predictions.

``ot_posthoc`` and ``otlm_apply`` are **transductive**: the OT correction
needs the whole evaluated set at once and assumes its class marginal. Their
**inductive** counterparts estimate the correction on held-out predictions
(a balanced meta set or validation split, not the test set) and apply it to
each image alone: the OT solution is a per-class shift ``g`` of ``log Z``
(``OTPosthocResult.class_shift``), so :func:`apply_class_shift` with the
``g`` of the held-out set corrects any single prediction.

Why log-probabilities are as good as logits here: the OT cost
``M = -log softmax(z)`` differs from ``-z`` by a per-row constant, which the
row scaling ``u`` absorbs, so the plan (and hence the correction) is the same
for logits and for ``log p``; logit adjustment only changes ``z`` by a
per-class constant, so ``softmax``/``argmax`` are equal too. (OTLM's ``z W``
is *not* row-shift invariant, so OTLM fitted on ``log p`` is OTLM with the
features ``log p``; fit and apply it on the same representation.)
"""
from typing import List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .sinkhorn import entropic_ot, sinkhorn_log

__all__ = [
    'normalize_prior', 'logit_adjust_posthoc', 'OTPosthocResult',
    'ot_posthoc', 'OTLMParams', 'otlm_objective', 'otlm_fit', 'otlm_apply',
    'otlm_map', 'apply_class_shift'
]

PriorLike = Union[Sequence[float], Tensor]


def normalize_prior(prior: Optional[PriorLike],
                    num_classes: int,
                    name: str = 'class_prior',
                    dtype: torch.dtype = torch.float64,
                    device=None) -> Tensor:
    """Validate a class distribution (counts or probabilities) and normalise
    it to sum to one. ``None`` gives the uniform distribution.

    Args:
        prior (Sequence[float] | Tensor, optional): K non-negative numbers
            with a positive sum, e.g. training class counts.
        num_classes (int): K.
        name (str): Argument name used in error messages.

    Returns:
        Tensor: Shape (K, ), sums to one.
    """
    if prior is None:
        return torch.full((num_classes, ),
                          1. / num_classes,
                          dtype=dtype,
                          device=device)
    p = torch.as_tensor(prior, dtype=dtype, device=device).flatten()
    if p.numel() != num_classes:
        raise ValueError(f'`{name}` has {p.numel()} entries but the '
                         f'predictions have {num_classes} classes')
    if not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f'`{name}` must be finite, non-negative and have a '
                         f'positive sum, got {p.tolist()}')
    return p / p.sum()


def _check_scores(scores: Tensor, name: str) -> Tensor:
    if not isinstance(scores, Tensor):
        raise TypeError(f'`{name}` must be a torch.Tensor, got '
                        f'{type(scores).__name__}')
    if scores.dim() != 2 or scores.size(0) == 0 or scores.size(1) == 0:
        raise ValueError(f'`{name}` must have shape (N, K) with N, K > 0, got '
                         f'{tuple(scores.shape)}')
    if not scores.is_floating_point():
        scores = scores.float()
    return scores


def _log_probs(scores: Tensor, input_type: str) -> Tensor:
    """Row-normalised log-probabilities from logits or probabilities."""
    if input_type == 'logits':
        return F.log_softmax(scores, dim=-1)
    if input_type == 'probs':
        if (scores < 0).any():
            raise ValueError("input_type='probs' but the scores have "
                             'negative entries')
        logp = torch.log(scores.clamp_min(torch.finfo(scores.dtype).tiny))
        return F.log_softmax(logp, dim=-1)  # renormalise rows
    raise ValueError("`input_type` must be 'logits' or 'probs', got "
                     f'{input_type!r}')


def logit_adjust_posthoc(logits: Tensor,
                         class_prior: PriorLike,
                         tau: float = 1.0) -> Tensor:
    r"""Post-hoc logit adjustment :math:`z - \tau \log \pi` (Menon et al.,
    2021; Peng et al., 2022, Eq. (6)).

    Args:
        logits (Tensor): (N, K) logits (or log-probabilities).
        class_prior (Sequence[float] | Tensor): Training class distribution
            :math:`\pi` (counts are normalised).
        tau (float): Adjustment strength. Defaults to 1.0.

    Returns:
        Tensor: Adjusted logits, (N, K).
    """
    logits = _check_scores(logits, 'logits')
    prior = normalize_prior(class_prior, logits.size(1), 'class_prior',
                            torch.float64, logits.device)
    if (prior == 0).any():
        raise ValueError('`class_prior` has a zero entry; logit adjustment '
                         'needs every training class to be non-empty')
    return logits - (tau * prior.log()).to(logits.dtype)


class OTPosthocResult(NamedTuple):
    """Output of :func:`ot_posthoc` / :func:`otlm_apply`.

    Attributes:
        pred_score (Tensor): Refined predictions ``Y`` (N, K), rows sum to 1.
        pred_label (Tensor): ``argmax`` of the rows of ``Y`` (N, ).
        class_shift (Tensor): (K, ) per-class additive shift of the
            log-probabilities equivalent to the correction:
            ``argmax_k Y_nk == argmax_k (log Z_nk + class_shift_k)``
            (``class_shift = g`` = column dual potential).
        n_iter (int): Sinkhorn iterations run.
        err (float): Final L1 marginal error of the (normalised) plan.
    """
    pred_score: Tensor
    pred_label: Tensor
    class_shift: Tensor
    n_iter: int
    err: float


def ot_posthoc(scores: Tensor,
               target_marginal: Optional[PriorLike] = None,
               reg: float = 1.0,
               input_type: str = 'logits',
               max_iter: int = 200,
               tol: Optional[float] = 1e-6,
               check_every: int = 10) -> OTPosthocResult:
    r"""OT post-hoc correction (Peng et al., ICLR 2022, Eq. (9)-(11),
    Algorithm 1).

    With ``Z`` the (N, K) predicted probabilities of the whole test set,
    solves

    .. math::

        \min_Y \langle -\log Z, Y\rangle + \lambda \langle Y, \log Y\rangle
        \quad \text{s.t.}\quad Y 1_K = 1_N,\ Y^\top 1_N = \mu,

    with :math:`\mu = N \cdot` ``target_marginal`` (uniform by default, the
    paper's assumption for a balanced test set), i.e. entropic OT between the
    N samples (mass 1 each) and the K classes (mass :math:`\mu_k`) with cost
    :math:`-\log Z` and ``reg`` = :math:`\lambda`. It is solved by
    :func:`~mmot.ot.sinkhorn.sinkhorn_log` on the normalised marginals
    (``1/N`` and ``target_marginal``; the plan is ``Y / N``, which has the
    same minimiser), and the refined prediction is ``argmax`` of each row of
    ``Y``. The solution is ``Y = diag(u) Z^{1/λ} diag(v)``, so the
    correction is a per-class shift of ``log Z`` (returned as
    ``class_shift``). Needs many samples: the marginal constraint is over the
    whole set (see the paper's Remark).

    Args:
        scores (Tensor): (N, K) logits (``input_type='logits'``) or
            probabilities (``'probs'``).
        target_marginal (Sequence[float] | Tensor, optional): Desired class
            distribution of the refined predictions. Defaults to uniform.
        reg (float): Entropic regularisation :math:`\lambda` (paper: 0.1 on
            CIFAR-100-LT, 1.2 on ImageNet-LT, 1.0 on iNaturalist; Appendix B
            finds 1.0 best). Defaults to 1.0.
        input_type (str): ``'logits'`` or ``'probs'``. Defaults to
            ``'logits'``.
        max_iter (int): Max Sinkhorn iterations (paper's T). Defaults to 200.
        tol (float, optional): Stop when the L1 marginal error is below
            this. Defaults to 1e-6.
        check_every (int): Stopping-test period. Defaults to 10.

    Returns:
        OTPosthocResult: Refined scores, labels, class shift, iterations,
        error.
    """
    scores = _check_scores(scores, 'scores')
    n, k = scores.shape
    logp = _log_probs(scores, input_type)
    mu = normalize_prior(target_marginal, k, 'target_marginal', logp.dtype,
                         logp.device)
    a = torch.full((n, ), 1. / n, dtype=logp.dtype, device=logp.device)
    with torch.no_grad():
        res = sinkhorn_log(
            a, mu, -logp, reg, max_iter=max_iter, tol=tol,
            check_every=check_every)
    y = res.plan * n
    y = y / y.sum(-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
    return OTPosthocResult(
        pred_score=y,
        pred_label=y.argmax(-1),
        class_shift=res.g.detach(),
        n_iter=res.n_iter,
        err=float(res.err))


class OTLMParams(NamedTuple):
    """Parameters of OTLM (Peng et al., ICLR 2022, Eq. (12)).

    Attributes:
        weight (Tensor): The learnt linear map ``W`` (K, K); the mapped
            logits are ``z @ W + bias`` (i.e. :math:`W^\\top \\Phi(x)` per
            sample).
        bias (Tensor): Fixed bias (K, ): ``-tau * log p(y_s)`` if a training
            prior was given to :func:`otlm_fit`, else zeros.
        losses (list[float]): Objective value before each update.
    """
    weight: Tensor
    bias: Tensor
    losses: List[float]


def otlm_objective(logits: Tensor,
                   weight: Tensor,
                   bias: Optional[Tensor] = None,
                   target_marginal: Optional[PriorLike] = None,
                   reg: float = 1.0,
                   max_iter: int = 200,
                   tol: Optional[float] = 1e-6,
                   check_every: int = 10,
                   grad: str = 'envelope') -> Tensor:
    r"""OTLM objective, Eq. (12) of Peng et al. (ICLR 2022), per sample:

    .. math::

        \frac{1}{N}\min_{Y}\ -\langle Y, \log Z\rangle
            + \lambda \langle Y, \log Y\rangle,\quad
        Z = \mathrm{softmax}(\Phi W + b),\
        Y 1_K = 1_N,\ Y^\top 1_N = \mu,

    computed as the regularised entropic OT value between the normalised
    marginals (:func:`~mmot.ot.sinkhorn.entropic_ot`; it differs from the
    ``Y``-scaled objective by ``1/N`` and a constant). Differentiable in
    ``weight``: ``grad='autodiff'`` back-propagates through the unrolled
    log-domain Sinkhorn loop as the paper does (Eq. (13)-(14)); ``'envelope'``
    uses the Danskin gradient ``<Y*, d(-log Z)/dW>``, which is what the
    unrolled gradient converges to when Sinkhorn has converged (the paper's
    own assumption) and needs no memory per iteration.

    Args:
        logits (Tensor): (N, K) logits :math:`\Phi(x)`.
        weight (Tensor): (K, K) linear map.
        bias (Tensor, optional): (K, ) fixed bias. Defaults to None.
        target_marginal: Class distribution :math:`\mu / N`; uniform if None.
        reg (float): :math:`\lambda`. Defaults to 1.0.
        max_iter, tol, check_every: Sinkhorn controls.
        grad (str): ``'envelope'`` or ``'autodiff'``. Defaults to
            ``'envelope'``.

    Returns:
        Tensor: Scalar objective.
    """
    logits = _check_scores(logits, 'logits')
    n, k = logits.shape
    z = logits @ weight
    if bias is not None:
        z = z + bias
    cost = -F.log_softmax(z, dim=-1)
    mu = normalize_prior(target_marginal, k, 'target_marginal', cost.dtype,
                         cost.device)
    a = torch.full((n, ), 1. / n, dtype=cost.dtype, device=cost.device)
    return entropic_ot(
        a, mu, cost, reg, max_iter=max_iter, tol=tol,
        check_every=check_every, grad=grad)


def otlm_fit(logits: Tensor,
             target_marginal: Optional[PriorLike] = None,
             reg: float = 1.0,
             n_iter: int = 20,
             lr: float = 1e-3,
             weight_decay: float = 1e-3,
             optimizer: str = 'adam',
             momentum: float = 0.,
             batch_size: Optional[int] = None,
             class_prior: Optional[PriorLike] = None,
             tau: float = 1.0,
             max_iter: int = 200,
             tol: Optional[float] = 1e-6,
             check_every: int = 10,
             grad: str = 'envelope',
             seed: int = 0) -> OTLMParams:
    r"""Fit OTLM's linear map ``W`` (Peng et al., ICLR 2022, Sec. 3.2,
    Eq. (12)) on unlabelled predictions.

    ``W`` starts at the identity and is updated by ``n_iter`` steps of Adam
    or SGD (with L2 ``weight_decay``) on :func:`otlm_objective`, each on a
    random batch of ``batch_size`` samples (all of them if None). No labels
    are used: the paper fits ``W`` on a validation set "without labelling
    information"; fitting on the test predictions themselves is the
    transductive variant. With ``class_prior`` the fixed bias
    ``-tau * log p(y_s)`` is absorbed into the layer, as the paper suggests.
    Paper settings (Appendix C.1): CIFAR-100-LT Adam, lr 1e-3, wd 1e-3,
    20 iterations, batch 10k, :math:`\lambda=0.1`, T=200; ImageNet-LT SGD,
    lr 0.2, wd 1e-3, 100 iterations, :math:`\lambda=1.2`, T=7;
    iNaturalist SGD, lr 0.05, wd 1e-3, :math:`\lambda=1`, T=10.

    Args:
        logits (Tensor): (N, K) logits used for fitting.
        target_marginal: Class distribution of the refined predictions;
            uniform if None.
        reg (float): :math:`\lambda`. Defaults to 1.0.
        n_iter (int): Optimiser steps. Defaults to 20.
        lr (float): Learning rate. Defaults to 1e-3.
        weight_decay (float): L2 weight decay. Defaults to 1e-3.
        optimizer (str): ``'adam'`` or ``'sgd'``. Defaults to ``'adam'``.
        momentum (float): SGD momentum. Defaults to 0.
        batch_size (int, optional): Samples per step; None = all.
        class_prior (optional): Training class distribution for the fixed
            bias; None = no bias.
        tau (float): Scale of the fixed bias. Defaults to 1.0.
        max_iter, tol, check_every: Sinkhorn controls.
        grad (str): ``'envelope'`` or ``'autodiff'`` (see
            :func:`otlm_objective`). Defaults to ``'envelope'``.
        seed (int): Seed of the batch draws. Defaults to 0.

    Returns:
        OTLMParams: ``weight``, ``bias`` and the loss history.
    """
    logits = _check_scores(logits, 'logits').detach()
    n, k = logits.shape
    if not (isinstance(n_iter, int) and n_iter >= 0):
        raise ValueError(f'`n_iter` must be an int >= 0, got {n_iter!r}')
    if batch_size is not None and not (isinstance(batch_size, int)
                                       and batch_size > 0):
        raise ValueError('`batch_size` must be a positive int or None, got '
                         f'{batch_size!r}')
    if grad not in ('envelope', 'autodiff'):
        raise ValueError("`grad` must be 'envelope' or 'autodiff', got "
                         f'{grad!r}')
    weight = torch.eye(k, dtype=logits.dtype, device=logits.device)
    weight.requires_grad_(True)
    if class_prior is None:
        bias = logits.new_zeros(k)
    else:
        prior = normalize_prior(class_prior, k, 'class_prior', logits.dtype,
                                logits.device)
        if (prior == 0).any():
            raise ValueError('`class_prior` has a zero entry')
        bias = -tau * prior.log()
    if optimizer == 'adam':
        opt = torch.optim.Adam([weight], lr=lr, weight_decay=weight_decay)
    elif optimizer == 'sgd':
        opt = torch.optim.SGD([weight],
                              lr=lr,
                              momentum=momentum,
                              weight_decay=weight_decay)
    else:
        raise ValueError("`optimizer` must be 'adam' or 'sgd', got "
                         f'{optimizer!r}')
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(n_iter):
        if batch_size is None or batch_size >= n:
            batch = logits
        else:
            idx = torch.randperm(n, generator=g)[:batch_size]
            batch = logits[idx.to(logits.device)]
        with torch.enable_grad():
            loss = otlm_objective(batch, weight, bias, target_marginal, reg,
                                  max_iter, tol, check_every, grad)
            opt.zero_grad()
            loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return OTLMParams(weight.detach(), bias.detach(), losses)


def otlm_apply(logits: Tensor,
               params: OTLMParams,
               target_marginal: Optional[PriorLike] = None,
               reg: float = 1.0,
               max_iter: int = 200,
               tol: Optional[float] = 1e-6,
               check_every: int = 10) -> OTPosthocResult:
    """Apply OTLM (Peng et al., ICLR 2022, Fig. 1): map the logits with the
    fitted layer, ``Z = softmax(z @ W + b)``, then run the OT correction
    (:func:`ot_posthoc`, Eq. (11)) with cost ``-log Z`` on the whole set.

    Args:
        logits (Tensor): (N, K) test logits (same representation as used in
            :func:`otlm_fit`).
        params (OTLMParams): Output of :func:`otlm_fit`.
        target_marginal, reg, max_iter, tol, check_every: As in
            :func:`ot_posthoc`.

    Returns:
        OTPosthocResult: The refined predictions.
    """
    return ot_posthoc(otlm_map(logits, params), target_marginal, reg,
                      'logits', max_iter, tol, check_every)


def otlm_map(logits: Tensor, params: OTLMParams) -> Tensor:
    """OTLM's fitted layer on each row: ``z @ W + b`` (N, K)."""
    logits = _check_scores(logits, 'logits')
    weight = params.weight.to(device=logits.device, dtype=logits.dtype)
    if weight.shape != (logits.size(1), logits.size(1)):
        raise ValueError(f'OTLM weight has shape {tuple(weight.shape)} but '
                         f'the logits have {logits.size(1)} classes')
    return logits @ weight + params.bias.to(device=logits.device,
                                            dtype=logits.dtype)


def apply_class_shift(scores: Tensor, class_shift: Tensor, reg: float = 1.0,
                      input_type: str = 'logits') -> Tensor:
    r"""The OT correction of each row alone, from a class shift estimated
    elsewhere (inductive).

    The row of the transductive plan is
    :math:`Y_n = \mathrm{softmax}((\log Z_n + g) / \lambda)`, with ``g``
    its column potential; with the ``g`` of :func:`ot_posthoc` (or of
    :func:`otlm_apply`) on held-out predictions this gives each test
    prediction its correction without looking at any other test image. On
    the set ``g`` was estimated on it reproduces :func:`ot_posthoc`'s
    ``pred_score``.

    Args:
        scores (Tensor): (N, K) logits or probabilities.
        class_shift (Tensor): (K, ) ``OTPosthocResult.class_shift``.
        reg (float): The :math:`\lambda` the shift was estimated with.
        input_type (str): ``'logits'`` or ``'probs'``.

    Returns:
        Tensor: (N, K) corrected probabilities.
    """
    scores = _check_scores(scores, 'scores')
    logp = _log_probs(scores, input_type)
    shift = torch.as_tensor(class_shift, dtype=logp.dtype,
                            device=logp.device).flatten()
    if shift.numel() != logp.size(1):
        raise ValueError(f'`class_shift` has {shift.numel()} entries but the '
                         f'scores have {logp.size(1)} classes')
    return torch.softmax((logp + shift) / reg, dim=-1)
