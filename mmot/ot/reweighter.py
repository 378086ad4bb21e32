# Copyright (c) mmot contributors. All rights reserved.
"""The OT re-weighting step, glue-free: pure torch, no mmengine.

``OTReweighter`` (an ``nn.Module``) owns the meta support Q, a cost and a
weight learner, and turns the features and labels of a training batch into
the batch weights of the weighted cross-entropy (paper Sec. 4-5, Algorithm 1
steps (b)-(c)). All its state is parameters and buffers, so ``.to()``,
``state_dict`` and model averaging carry it like any other module's.
"""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from .authors import sinkhorn_authors
from .sinkhorn import sinkhorn2, sinkhorn2_grad

META_MODES = ('prototype', 'whole', 'random', 'stochastic_prototype')
SOLVERS = ('mmot', 'authors')


def class_prototypes(feats: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """Per-class mean of ``feats`` (paper Eq. 12)."""
    sums = feats.new_zeros(num_classes, feats.shape[1]).index_add_(
        0, labels, feats)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1)
    return sums / counts.unsqueeze(1).to(feats.dtype)


class OTLoss:
    """``L_OT(a) = <T*(a), C>`` of one batch against Q (uniform), ``a`` the
    batch measure P(w) (B,).

    Calling it gives the differentiable loss (:func:`sinkhorn2`, for
    learners that back-propagate into their parameters, e.g. weight nets);
    :meth:`value_and_grad` gives the loss and its gradient w.r.t. ``a``
    without autograd (:func:`sinkhorn2_grad`), for learners that apply the
    chain rule themselves (:class:`WeightVector`).
    """

    def __init__(self, cost: torch.Tensor, reg: float, max_iter: int,
                 tol: float, check_every: int, grad: str,
                 b: Optional[torch.Tensor] = None):
        self.cost = cost
        if b is None:
            b = torch.full((cost.shape[1], ), 1.0 / cost.shape[1],
                           dtype=cost.dtype, device=cost.device)
        self.b = b
        self.kwargs = dict(max_iter=max_iter, tol=tol,
                           check_every=check_every, grad=grad)
        self.reg = reg

    #: Sinkhorn iterations of the last solve (None: not recorded)
    n_iter: Optional[int] = None

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return sinkhorn2(a.to(self.cost.dtype), self.b, self.cost, self.reg,
                         **self.kwargs)

    def value_and_grad(self, a: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        return sinkhorn2_grad(a.detach().to(self.cost.dtype), self.b,
                              self.cost, self.reg, **self.kwargs)


class AuthorsOTLoss(OTLoss):
    """The OT loss as the authors' code computes it
    (:func:`~mmot.ot.authors.sinkhorn_authors`: stop when the change of the
    meta-side potential is below ``thresh``, gradient by autograd through
    the iterations run), in the cost's dtype (float64 in the reweighter)."""

    def __init__(self, cost: torch.Tensor, reg: float, max_iter: int,
                 thresh: float, b: Optional[torch.Tensor] = None):
        super().__init__(cost, reg, max_iter, None, 1, 'autodiff', b)
        self.thresh = thresh

    def _solve(self, a):
        res = sinkhorn_authors(a.to(self.cost.dtype), self.b, self.cost,
                               self.reg, self.kwargs['max_iter'], self.thresh)
        self.n_iter = res.n_iter
        return res.value

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return self._solve(a)

    def value_and_grad(self, a: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            a = a.detach().to(self.cost.dtype).requires_grad_(True)
            value = self._solve(a)
            (grad, ) = torch.autograd.grad(value, a)
        return value.detach(), grad


class GlobalOTProblem:
    """What a whole-training-set learner (``is_global = True``) minimises:
    the OT between its measure over the training set and Q, with the
    re-weighter's cost and solver settings. Handed to its ``update``."""

    def __init__(self, support: Callable[[], Tuple[torch.Tensor,
                                                   torch.Tensor]],
                 cost: Callable, num_classes: int, reg: float, max_iter: int,
                 tol: float):
        self.support = support
        self.cost = cost
        self.num_classes = num_classes
        self.reg = reg
        self.max_iter = max_iter
        self.tol = tol


def resize_(buf: torch.Tensor, shape, dtype: Optional[torch.dtype] = None
            ) -> torch.Tensor:
    """Give a lazily sized buffer its shape in place (the same tensor
    object, so references that DDP, an EMA copy's pairing or a caller hold
    stay valid); a new dtype needs a new tensor, on the buffer's device."""
    if dtype is not None and dtype != buf.dtype:
        buf.data = torch.empty(shape, dtype=dtype, device=buf.device)
    else:
        buf.resize_(shape)
    return buf


class OTReweighter(nn.Module):
    """Batch weights from the entropic OT between P(w) and the meta set Q.

    Q is built from the meta features (``set_meta``) by ``meta_mode``:

    - ``'prototype'``: one point per class, the mean meta feature (Eq. 12).
    - ``'whole'``: every meta sample (Eq. 5).
    - ``'random'``: one random meta sample per class, redrawn each step.
    - ``'stochastic_prototype'``: ``num_prototypes`` random prototypes per
      step (for thousands of classes, ImageNet-LT's "reduced prototype").

    Q is uniform over its points. Each call does one learner update on
    ``L_OT = <T*, C>`` (:func:`sinkhorn2`) and returns the new batch weights.

    State (all buffers or the learner's and cost's own, so ``.to()``,
    ``state_dict`` and EMA copies carry it): ``meta_feats`` / ``meta_labels``
    (the meta features Q is built from), ``q_draws`` (how many random Q draws
    were made: draw ``t`` is seeded ``seed``, ``t``, so a resumed run draws
    what an uninterrupted one draws), and, not saved, the prototypes and the
    per-class weight statistics of the epoch. Sizes that depend on the data
    (the meta set's, the feature width, N for the learner) are given by
    :meth:`setup` before training, so they never change afterwards (an EMA
    copy pairs tensors by shape); a checkpoint loaded into an unsized
    re-weighter sizes it.

    Args:
        learner: A :class:`BaseWeightLearner` (an ``nn.Module``).
        cost: A cost module ``cost(z, y, zq, yq, num_classes) -> (B, M)``.
        num_classes (int, optional): K; or give it to :meth:`setup`.
        reg (float): Entropic regulariser lambda > 0. Defaults to 0.1.
        max_iter (int): Sinkhorn iterations at most. Defaults to 200.
        tol (float): Sinkhorn tolerance on the L1 marginal error.
            Defaults to 1e-6.
        check_every (int): Check the error every this many iterations.
            Defaults to 10.
        grad (str): ``'implicit'`` (exact, implicit differentiation at the
            fixed point), ``'autodiff'`` (exact, through the loop) or
            ``'envelope'`` (dual potentials, exact for the regularised
            objective only). Defaults to ``'implicit'``.
        meta_mode (str): See above. Defaults to ``'prototype'``.
        num_prototypes (int, optional): m for ``'stochastic_prototype'``.
        seed (int): Seed of the random Q draws. Defaults to 0.
        solver (str): ``'mmot'`` (converged log-domain Sinkhorn,
            :func:`sinkhorn2`, in float32; float64 features stay float64) or
            ``'authors'`` (the authors' code: :class:`AuthorsOTLoss`, cost
            and solve in float64; ``tol``, ``check_every`` and ``grad`` do
            not apply). Defaults to ``'mmot'``.
        authors_thresh (float): Stopping threshold of ``solver='authors'``
            (their 0.1). Defaults to 0.1.
    """

    def __init__(self,
                 learner: nn.Module,
                 cost: Callable,
                 num_classes: Optional[int] = None,
                 reg: float = 0.1,
                 max_iter: int = 200,
                 tol: float = 1e-6,
                 check_every: int = 10,
                 grad: str = 'implicit',
                 meta_mode: str = 'prototype',
                 num_prototypes: Optional[int] = None,
                 seed: int = 0,
                 solver: str = 'mmot',
                 authors_thresh: float = 0.1):
        super().__init__()
        check_number('reg (lambda)', reg, lambda v: v > 0, '> 0')
        check_number('authors_thresh', authors_thresh, lambda v: v > 0, '> 0')
        check_number('tol', tol, lambda v: v >= 0, '>= 0')
        _integer('max_iter', max_iter)
        _integer('check_every', check_every)
        _integer('seed', seed, low=0)
        if solver not in SOLVERS:
            raise ValueError(f'solver must be one of {SOLVERS}, got '
                             f'{solver!r}')
        if meta_mode not in META_MODES:
            raise ValueError(f'meta_mode must be one of {META_MODES}, '
                             f'got {meta_mode!r}')
        if meta_mode == 'stochastic_prototype':
            _integer('num_prototypes', num_prototypes)
        elif num_prototypes is not None:
            raise ValueError(f'num_prototypes={num_prototypes!r} has no effect '
                             f'with meta_mode={meta_mode!r} (only with '
                             "'stochastic_prototype')")
        if grad not in ('implicit', 'autodiff', 'envelope'):
            raise ValueError("grad must be 'implicit', 'autodiff' or "
                             f"'envelope', got {grad!r}")
        if not isinstance(learner, nn.Module):
            raise TypeError(f'learner must be a weight learner module, got '
                            f'{type(learner).__name__}')
        self.learner = learner
        self.cost = cost
        self.num_classes: Optional[int] = None
        self.reg = float(reg)
        self.max_iter = max_iter
        self.tol = float(tol)
        self.check_every = check_every
        self.grad = grad
        self.meta_mode = meta_mode
        self.num_prototypes = num_prototypes
        self.solver = solver
        self.authors_thresh = float(authors_thresh)
        self.seed = int(seed)
        # whether meta_feats hold a meta set (set_meta or a loaded state)
        self.meta_ready = False
        self.register_buffer('meta_feats', torch.empty(0, 0))
        self.register_buffer('meta_labels', torch.empty(0, dtype=torch.long))
        self.register_buffer('q_draws', torch.zeros((), dtype=torch.long))
        # derived (from meta_feats) or per-epoch: not saved
        self.register_buffer('prototypes', torch.empty(0, 0),
                             persistent=False)
        self.register_buffer('weight_sum', torch.zeros(0, dtype=torch.float64),
                             persistent=False)
        self.register_buffer('weight_count',
                             torch.zeros(0, dtype=torch.float64),
                             persistent=False)
        if num_classes is not None:
            self.setup(num_classes)

    def setup(self, num_classes: int, num_samples: Optional[int] = None,
              labels: Optional[torch.Tensor] = None,
              counts: Optional[torch.Tensor] = None,
              feat_dim: Optional[int] = None,
              meta_size: Optional[int] = None,
              dtype: torch.dtype = torch.float32) -> None:
        """Size the state before training: K; the training set the
        learner's weights live on (``num_samples`` dataset indices,
        ``labels`` (num_samples,) with -1 for indices outside the training
        set, the class ``counts``); the OT feature width ``feat_dim`` and
        the number of meta features ``meta_size`` (with their ``dtype``).
        Everything is allocated on this module's device."""
        _integer('num_classes', num_classes)
        if self.meta_mode == 'stochastic_prototype' and \
                self.num_prototypes > num_classes:
            raise ValueError(f'num_prototypes must be in [1, {num_classes}] '
                             f'(the number of classes), got '
                             f'{self.num_prototypes}')
        self.num_classes = int(num_classes)
        for buf in (self.weight_sum, self.weight_count):
            resize_(buf, (self.num_classes, )).zero_()
        if feat_dim is not None and meta_size is not None:
            resize_(self.meta_feats, (meta_size, feat_dim), dtype).zero_()
            resize_(self.meta_labels, (meta_size, )).fill_(-1)
            self._size_prototypes()
        if num_samples is not None:
            if feat_dim is None:
                raise ValueError('setup: the learner needs feat_dim')
            self.learner.build(int(num_samples), labels, counts, feat_dim)

    def _size_prototypes(self) -> None:
        if self.meta_mode in ('prototype', 'stochastic_prototype') and \
                self.num_classes is not None:
            resize_(self.prototypes,
                    (self.num_classes, self.meta_feats.shape[1]),
                    torch.promote_types(self.meta_feats.dtype, torch.float32))

    # -- Q ----------------------------------------------------------------
    def set_meta(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Set the meta features (M, E) and labels (M,) Q is built from."""
        labels = labels.long()
        missing = torch.bincount(labels, minlength=self.num_classes) == 0
        if self.meta_mode != 'whole' and missing.any():
            raise ValueError(
                f'meta set has no sample of classes '
                f'{missing.nonzero().flatten().tolist()[:10]}; meta_mode='
                f'{self.meta_mode!r} needs every class')
        if self.meta_feats.numel() == 0:  # not sized by setup()
            resize_(self.meta_feats, feats.shape, feats.dtype)
            resize_(self.meta_labels, labels.shape)
            self._size_prototypes()
        elif tuple(feats.shape) != tuple(self.meta_feats.shape):
            raise ValueError(
                f'the meta set gives {tuple(feats.shape)} features, the '
                f're-weighter was set up for {tuple(self.meta_feats.shape)}'
                ' (meta samples x feature width): the meta set must keep '
                'its size')
        self.meta_feats.copy_(feats.detach())
        self.meta_labels.copy_(labels)
        self.meta_ready = True
        self._update_prototypes()

    def _update_prototypes(self) -> None:
        if self.meta_mode in ('prototype', 'stochastic_prototype') and \
                self.meta_ready and self.num_classes is not None:
            self.prototypes.copy_(class_prototypes(
                self.meta_feats.to(self.prototypes.dtype), self.meta_labels,
                self.num_classes))

    def _draw(self) -> torch.Generator:
        """The generator of the next random Q draw (CPU: the same draws on
        every device)."""
        g = torch.Generator().manual_seed(
            self.seed * 1_000_003 + int(self.q_draws))
        self.q_draws += 1
        return g

    def support(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The support of Q for this step: (features, labels)."""
        if not self.meta_ready:
            raise RuntimeError('OTReweighter.set_meta() was not called')
        dev = self.meta_labels.device
        if self.meta_mode in ('prototype', 'stochastic_prototype'):
            zq = self.prototypes
            yq = torch.arange(self.num_classes, device=dev)
            if self.meta_mode == 'stochastic_prototype' and \
                    self.num_prototypes < self.num_classes:
                sel = torch.randperm(self.num_classes, generator=self._draw()
                                     )[:self.num_prototypes].to(dev)
                return zq[sel], yq[sel]
            return zq, yq
        zq, yq = self.meta_feats, self.meta_labels
        if self.meta_mode == 'random':
            order = torch.argsort(yq, stable=True)
            counts = torch.bincount(yq, minlength=self.num_classes)
            start = torch.cumsum(counts, 0) - counts
            r = torch.rand(self.num_classes, generator=self._draw()).to(dev)
            pick = start + (r * counts).long().clamp(max=counts - 1)
            sel = order[pick]
            return zq[sel], yq[sel]
        return zq, yq

    # -- the step -----------------------------------------------------------
    def ot_loss_fn(self, cost: torch.Tensor) -> 'OTLoss':
        """The OT loss of a batch with this (B, M) cost against uniform Q."""
        b = torch.full((cost.shape[1], ), 1.0 / cost.shape[1],
                       dtype=cost.dtype, device=cost.device)
        if self.solver == 'authors':
            return AuthorsOTLoss(cost, self.reg, self.max_iter,
                                 self.authors_thresh, b)
        return OTLoss(cost, self.reg, self.max_iter, self.tol,
                      self.check_every, self.grad, b)

    def compute_dtype(self, z: torch.Tensor) -> torch.dtype:
        """float64 for the authors' solver (their combined cost is float64)
        and for float64 features, else float32 (also under bf16 autocast)."""
        if self.solver == 'authors' or z.dtype == torch.float64:
            return torch.float64
        return torch.float32

    def forward(self, z: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Loss weights (B,) for a batch with features ``z`` (B, E),
        labels ``y`` (B,) or (B, K) and dataset indices ``idx`` (B,).

        The loss weights are the learner's (``learner.loss_weights``): the
        batch measure ``a`` after the step (``a_i >= 0``, ``sum_i a_i = 1``)
        or, for :class:`AuthorsWeightVector` (the authors' code),
        the raw weights ``w_B``. The stats hold the OT loss before the step
        (``ot_dist``), whether the step was taken and, for the authors'
        solver, the Sinkhorn iterations (``ot_iters``).

        Runs in float32 (float64 for the authors' solver) with autocast off,
        also inside a mixed-precision forward pass (the Sinkhorn
        log-sum-exps and the implicit gradient's solve need it)."""
        z = z.detach().to(self.compute_dtype(z))
        n_iter = None
        with torch.autocast(device_type=z.device.type, enabled=False):
            if self.learner.is_global:  # P(w) over the whole training set
                problem = GlobalOTProblem(self.support, self.cost,
                                          self.num_classes, self.reg,
                                          self.max_iter, self.tol)
                a, loss, stepped = self.learner.update(idx, z.float(),
                                                       problem)
            else:
                zq, yq = self.support()
                with torch.no_grad():
                    cost = self.cost(z, y, zq.to(z.dtype), yq,
                                     self.num_classes)
                ot_loss = self.ot_loss_fn(cost)
                a, loss, stepped = self.learner.update(idx, z, ot_loss)
                n_iter = ot_loss.n_iter
        self._accumulate(a, y)
        stats = dict(ot_dist=loss, ot_stepped=torch.tensor(
            float(stepped), device=z.device))
        if n_iter is not None:
            stats['ot_iters'] = torch.tensor(float(n_iter), device=z.device)
        return self.learner.loss_weights(idx, a), stats

    # -- statistics -------------------------------------------------------
    def reset_stats(self) -> None:
        self.weight_sum.zero_()
        self.weight_count.zero_()

    def _accumulate(self, weights: torch.Tensor, y: torch.Tensor) -> None:
        # on the device, no host sync in the training step
        y = y if y.dim() == 1 else y.argmax(dim=1)
        w = (weights.detach() * weights.numel()).to(self.weight_sum.dtype)
        self.weight_sum.index_add_(0, y, w)
        self.weight_count.index_add_(0, y, torch.ones_like(w))

    def class_mean_weights(self) -> torch.Tensor:
        """Mean relative batch weight B * a_i per class since the last reset
        (1 = the uniform weight; NaN for classes not seen), on the CPU."""
        return (self.weight_sum / self.weight_count).float().cpu()

    # -- state --------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint loaded before setup() (evaluation, a fresh model)
        # sizes the lazily sized buffers
        for name in ('meta_feats', 'meta_labels'):
            value = state_dict.get(prefix + name)
            buf = getattr(self, name)
            if value is not None and buf.numel() == 0 and value.numel():
                resize_(buf, value.shape, value.dtype)
                if name == 'meta_feats':
                    self._size_prototypes()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        labels = state_dict.get(prefix + 'meta_labels')
        if labels is not None and labels.numel() and int(labels[0]) >= 0:
            self.meta_ready = True
            self._update_prototypes()


def check_number(name: str, value, ok, what: str) -> None:
    """Argument ``name`` must be a number (not a bool or a string) for which
    ``ok(value)`` holds; else a ValueError naming it and ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number {what}, got {value!r}')
    if not ok(value):
        raise ValueError(f'{name} must be {what}, got {value!r}')


def _integer(name, value, low=1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
