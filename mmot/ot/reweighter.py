# Copyright (c) mmot contributors. All rights reserved.
"""The OT re-weighting step, glue-free: pure torch, no mmengine.

``OTReweighter`` owns the meta support Q, a cost and a weight learner, and
turns the features and labels of a training batch into the batch weights of
the weighted cross-entropy (paper Sec. 4-5, Algorithm 1 steps (b)-(c)).
"""
from typing import Dict, Optional, Tuple

import torch

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


class OTReweighter:
    """Batch weights from the entropic OT between P(w) and the meta set Q.

    Q is built from the meta features (``set_meta``) by ``meta_mode``:

    - ``'prototype'``: one point per class, the mean meta feature (Eq. 12).
    - ``'whole'``: every meta sample (Eq. 5).
    - ``'random'``: one random meta sample per class, redrawn each step.
    - ``'stochastic_prototype'``: ``num_prototypes`` random prototypes per
      step (for thousands of classes, ImageNet-LT's "reduced prototype").

    Q is uniform over its points. Each call does one learner update on
    ``L_OT = <T*, C>`` (:func:`sinkhorn2`) and returns the new batch weights.

    Args:
        learner: A :class:`BaseWeightLearner`, built by the caller, or by
            the first :meth:`set_meta` after :meth:`setup` got the
            training set.
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
                 learner,
                 cost,
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
        if solver not in SOLVERS:
            raise ValueError(f'solver must be one of {SOLVERS}, got '
                             f'{solver!r}')
        if not authors_thresh > 0:
            raise ValueError(f'authors_thresh must be > 0, got '
                             f'{authors_thresh!r}')
        if not reg > 0:
            raise ValueError(f'reg (lambda) must be > 0, got {reg}')
        if meta_mode not in META_MODES:
            raise ValueError(f'meta_mode must be one of {META_MODES}, '
                             f'got {meta_mode!r}')
        if meta_mode == 'stochastic_prototype' and not (
                isinstance(num_prototypes, int) and num_prototypes >= 1):
            raise ValueError('num_prototypes must be an int >= 1 for '
                             "meta_mode='stochastic_prototype', got "
                             f'{num_prototypes!r}')
        if num_prototypes is not None and meta_mode != 'stochastic_prototype':
            raise ValueError(f'num_prototypes={num_prototypes!r} has no effect '
                             f'with meta_mode={meta_mode!r} (only with '
                             "'stochastic_prototype')")
        if not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f'max_iter must be an int >= 1, got {max_iter!r}')
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f'tol must be >= 0, got {tol!r}')
        if not (isinstance(check_every, int) and check_every >= 1):
            raise ValueError(f'check_every must be an int >= 1, got '
                             f'{check_every!r}')
        if grad not in ('implicit', 'autodiff', 'envelope'):
            raise ValueError("grad must be 'implicit', 'autodiff' or "
                             f"'envelope', got {grad!r}")
        self.learner = learner
        self.cost = cost
        self.num_classes = None
        # (num_samples, labels, counts) while the learner waits to be built
        # (setup()); None once built, or when the caller builds it
        self._to_build = None
        self._pending = None  # learner state waiting for the build
        self.reg = float(reg)
        self.max_iter = max_iter
        self.tol = tol
        self.check_every = check_every
        self.grad = grad
        self.meta_mode = meta_mode
        self.num_prototypes = num_prototypes
        self.solver = solver
        self.authors_thresh = float(authors_thresh)
        self.generator = torch.Generator().manual_seed(seed)
        self.meta_feats: Optional[torch.Tensor] = None
        self.meta_labels: Optional[torch.Tensor] = None
        self._support: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        # the ot_stepped values logged each step (not re-created per step)
        self._flags = (torch.tensor(0.0), torch.tensor(1.0))
        self._b: Optional[torch.Tensor] = None  # uniform Q, reused
        self.reset_stats()
        if num_classes is not None:
            self.setup(num_classes)

    def setup(self, num_classes: int, num_samples: Optional[int] = None,
              labels: Optional[torch.Tensor] = None,
              counts: Optional[torch.Tensor] = None) -> None:
        """The number of classes K and the training set the learner's
        weights live on: ``num_samples`` dataset indices, ``labels``
        (num_samples,) with -1 for indices outside the training set, and the
        class ``counts``. The learner is built at the first :meth:`set_meta`,
        where the feature width is known (it is the classifier input's, not
        always the head's ``in_channels``)."""
        if self.meta_mode == 'stochastic_prototype' and \
                self.num_prototypes > num_classes:
            raise ValueError(f'num_prototypes must be in [1, {num_classes}] '
                             f'(the number of classes), got '
                             f'{self.num_prototypes}')
        self.num_classes = int(num_classes)
        self.reset_stats()
        if num_samples is not None:
            self._to_build = (int(num_samples), labels, counts)

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
        self.meta_feats = feats.detach()
        self.meta_labels = labels
        if self._to_build is not None:
            num_samples, train_labels, counts = self._to_build
            self.learner.build(num_samples, train_labels, counts,
                               feats.shape[1])
            self._to_build = None
            if self._pending is not None:
                self.learner.load_learner_state(self._pending)
                self._pending = None
        if self.meta_mode in ('prototype', 'stochastic_prototype'):
            feats = self.meta_feats
            protos = class_prototypes(
                feats.to(torch.promote_types(feats.dtype, torch.float32)),
                labels, self.num_classes)
            self._support = (protos, torch.arange(
                self.num_classes, device=labels.device))
        else:
            self._support = (self.meta_feats, labels)
        if self.meta_mode == 'random':
            order = torch.argsort(labels, stable=True)
            counts = torch.bincount(labels, minlength=self.num_classes)
            self._by_class = (order, torch.cumsum(counts, 0) - counts, counts)

    def support(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The support of Q for this step: (features, labels)."""
        if self._support is None:
            raise RuntimeError('OTReweighter.set_meta() was not called')
        zq, yq = self._support
        if self.meta_mode == 'random':
            order, start, counts = self._by_class
            r = torch.rand(self.num_classes, generator=self.generator)
            pick = start + (r.to(counts.device) * counts).long().clamp(
                max=counts - 1)
            sel = order[pick]
            return zq[sel], yq[sel]
        if self.meta_mode == 'stochastic_prototype' and \
                self.num_prototypes < self.num_classes:
            sel = torch.randperm(
                self.num_classes, generator=self.generator)[:self.num_prototypes]
            sel = sel.to(yq.device)
            return zq[sel], yq[sel]
        return zq, yq

    # -- the step -----------------------------------------------------------
    def ot_loss_fn(self, cost: torch.Tensor) -> 'OTLoss':
        b = self._b
        if b is None or b.shape[0] != cost.shape[1] or \
                b.dtype != cost.dtype or b.device != cost.device:
            b = self._b = torch.full((cost.shape[1], ), 1.0 / cost.shape[1],
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

    def __call__(self, z: torch.Tensor, y: torch.Tensor,
                 idx: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Loss weights (B,) for a batch with features ``z`` (B, E),
        labels ``y`` (B,) or (B, K) and dataset indices ``idx`` (B,).

        The loss weights are the learner's (:meth:`loss_weights`): the batch
        measure ``a`` after the step (``a_i >= 0``, ``sum_i a_i = 1``) or,
        for a learner with ``loss_weights='raw'`` (the authors' code), the
        raw weights ``w_B``. The stats hold the OT loss before the step
        (``ot_dist``), whether the step was taken and, for the authors'
        solver, the Sinkhorn iterations (``ot_iters``).

        Runs in float32 (float64 for the authors' solver) with autocast off,
        also inside a mixed-precision forward pass (the Sinkhorn
        log-sum-exps and the implicit gradient's solve need it)."""
        z = z.detach().to(self.compute_dtype(z))
        if getattr(self.learner, 'is_global', False):
            # P(w) over the whole training set (GlobalWeightVector)
            with torch.no_grad(), torch.autocast(device_type=z.device.type,
                                                 enabled=False):
                a, loss, stepped = self.learner.global_update(
                    idx, z.float(), self.support, self.cost,
                    self.num_classes, self.reg, self.max_iter, self.tol)
            self._accumulate(a, y)
            return a, dict(ot_dist=loss, ot_stepped=self._flags[stepped])
        zq, yq = self.support()
        if torch.is_autocast_enabled(z.device.type):
            with torch.autocast(device_type=z.device.type, enabled=False):
                a, loss, stepped, n_iter = self._step(z, y, zq, yq, idx)
        else:
            a, loss, stepped, n_iter = self._step(z, y, zq, yq, idx)
        self._accumulate(a, y)
        stats = dict(ot_dist=loss, ot_stepped=self._flags[stepped])
        if n_iter is not None:
            stats['ot_iters'] = torch.tensor(float(n_iter))
        loss_weights = getattr(self.learner, 'loss_weights', None)
        weights = a if loss_weights is None else loss_weights(idx, a)
        return weights, stats

    def _step(self, z, y, zq, yq, idx):
        with torch.no_grad():
            cost = self.cost(z, y, zq.to(z.dtype), yq, self.num_classes)
        ot_loss = self.ot_loss_fn(cost)
        a, loss, stepped = self.learner.update(idx, z, ot_loss)
        return a, loss, stepped, ot_loss.n_iter

    # -- statistics -------------------------------------------------------
    def reset_stats(self) -> None:
        self._stat = torch.zeros(2, self.num_classes or 0,
                                 dtype=torch.float64)
        self._batches = []

    def _accumulate(self, weights: torch.Tensor, y: torch.Tensor) -> None:
        # kept as they are (no arithmetic, no host sync in the training
        # step) and folded into float64 sums on the CPU every 256 batches
        self._batches.append((weights.detach(), y))
        if len(self._batches) >= 256:
            self._fold()

    def _fold(self) -> None:
        if not self._batches:
            return
        w = torch.cat([(w * w.numel()).double().cpu()
                       for w, _ in self._batches])
        y = torch.cat([(y if y.dim() == 1 else y.argmax(dim=1)).cpu()
                       for _, y in self._batches])
        self._stat[0].index_add_(0, y, w)
        self._stat[1].index_add_(0, y, torch.ones_like(w))
        self._batches = []

    def class_mean_weights(self) -> torch.Tensor:
        """Mean relative batch weight B * a_i per class since the last reset
        (1 = the uniform weight; NaN for classes not seen)."""
        self._fold()
        return (self._stat[0] / self._stat[1]).float()

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict:
        return dict(
            learner=None if self._to_build is not None else
            self.learner.learner_state(),
            generator=self.generator.get_state(),
            meta_feats=self.meta_feats,
            meta_labels=self.meta_labels)

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state['generator'])
        self._pending = state.get('learner')
        if state.get('meta_feats') is not None:
            self.set_meta(state['meta_feats'], state['meta_labels'])
        if self._to_build is None and self._pending is not None:
            self.learner.load_learner_state(self._pending)
            self._pending = None
