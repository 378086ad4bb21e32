# Copyright (c) mmot contributors. All rights reserved.
import math

import torch

from mmpretrain.registry import MODELS
from mmot.ot.reweighter import check_number, resize_
from .base_learner import (BaseWeightLearner, all_ranks_agree, distributed,
                           gather_batches)


def effective_number_weights(class_counts: torch.Tensor,
                             beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights (1 - beta) / (1 - beta^n_k) of Cui et al.
    2019, normalised to sum to the number of classes (float64)."""
    counts = class_counts.double().clamp(min=1)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.double), counts))
    return w / w.sum() * len(counts)


@MODELS.register_module()
class WeightVector(BaseWeightLearner):
    """One weight per training example, kept for the whole training set and
    updated with one optimiser step per batch (paper Sec. 4.3, Algorithm 1).

    Two parametrisations of the batch measure P(w):

    - ``'normalize'`` (the paper's text): w >= 0 is a measure over the
      training set, P(w) is the batch entries renormalised,
      ``a = w_B / sum(w_B)``; after each step w is clipped to ``min_weight``.
      w is stored scaled by N (uniform = 1), so beta does not depend on
      the dataset size.
    - ``'softmax'`` (the authors' code): w are free scores and
      ``a = softmax(w_B)`` within the batch.

    The step is torch's momentum SGD over the whole vector, kept across
    iterations (momentum and weight decay act on every entry at every
    step), the loss weights the batch measure ``a`` after the step (sums to
    1, so uniform weights give the mean loss). The authors' code steps and
    weights differently: :class:`AuthorsWeightVector`.

    Args:
        lr (float): beta, the weights' step size (paper: 1e-3 on CIFAR-LT,
            1e-2 on ImageNet-LT; authors' code: 1e-2). Defaults to 1e-3.
        momentum (float): Defaults to 0.9.
        weight_decay (float): Defaults to 0 (authors' code: 5e-4).
        init (str): ``'uniform'`` or ``'effective_number'`` (class-balanced
            weights with ``cb_beta``, the authors' code). Defaults to
            ``'uniform'``.
        parametrization (str): ``'normalize'`` or ``'softmax'``.
            Defaults to ``'normalize'``.
        cb_beta (float): beta of the effective number. Defaults to 0.9999.
        min_weight (float): Floor of w for ``'normalize'``. Defaults to 1e-4.
        dtype (str): Storage dtype of w, ``'float32'`` or ``'float64'``
            (for exact comparisons). Defaults to ``'float32'``.
    """

    def __init__(self,
                 lr: float = 1e-3,
                 momentum: float = 0.9,
                 weight_decay: float = 0.0,
                 init: str = 'uniform',
                 parametrization: str = 'normalize',
                 cb_beta: float = 0.9999,
                 min_weight: float = 1e-4,
                 dtype: str = 'float32'):
        super().__init__(lr, momentum, weight_decay)
        for name, value, choices in (
                ('init', init, ('uniform', 'effective_number')),
                ('parametrization', parametrization, ('normalize', 'softmax')),
                ('dtype', dtype, ('float32', 'float64'))):
            if value not in choices:
                raise ValueError(f'{type(self).__name__}.{name} must be ' +
                                 ' or '.join(
                    repr(c) for c in choices) + f', got {value!r}')
        name = type(self).__name__
        check_number(f'{name}.min_weight', min_weight, lambda v: v >= 0,
                     '>= 0')
        check_number(f'{name}.cb_beta', cb_beta, lambda v: 0 < v < 1,
                     'in (0, 1)')
        self.init = init
        self.parametrization = parametrization
        self.cb_beta = cb_beta
        self.min_weight = min_weight
        dtype = getattr(torch, dtype)
        # w (N,), and the stateful SGD's momentum (N,); sized by build()
        self.register_buffer('weights', torch.empty(0, dtype=dtype))
        self.register_buffer('weights_momentum', torch.empty(0, dtype=dtype))

    def build(self, num_samples, labels, class_counts, feat_dim):
        dev = self.weights.device
        w = resize_(self.weights, (num_samples, ))
        if self.init == 'uniform':
            w.fill_(0.0 if self.parametrization == 'softmax' else 1.0)
        else:
            labels = torch.as_tensor(labels, device=dev)
            cls_w = effective_number_weights(
                torch.as_tensor(class_counts), self.cb_beta).to(dev, w.dtype)
            w.fill_(1.0)
            valid = labels >= 0
            w[valid] = cls_w[labels[valid]]
        resize_(self.weights_momentum, (num_samples, )).zero_()

    def _learned(self):
        return [('weights', self.weights)]

    def measure(self, idx, z):
        return self._measure(idx)[0]

    def _measure(self, idx):
        """``(a, sum(w_B))`` (the sum for ``'normalize'`` only)."""
        w = self.weights[idx]
        if self.parametrization == 'softmax':
            return torch.softmax(w, dim=0), None
        w = w.clamp(min=0)
        total = w.sum().clamp(min=torch.finfo(w.dtype).tiny)
        return w / total, total

    def _batch_grad(self, idx, ot_loss):
        """``(a, loss, g_B)``: the batch measure, its OT loss and the
        gradient w.r.t. the batch entries ``weights[idx]`` by the closed-form
        chain rule through the measure, from ``g = dL/da``
        (``ot_loss.value_and_grad``): with ``<a, g> = sum_i a_i g_i`` it is
        ``a * (g - <a, g>)`` for ``'softmax'`` and ``(g - <a, g>) / sum(w_B)``
        for ``'normalize'`` (w >= 0 always: it starts >= 0 and is clipped at
        ``min_weight``) - what autograd gives, without a graph
        (tests/test_ot/test_reweighter_toy.py checks it against autograd
        and torch's SGD)."""
        a, total = self._measure(idx)
        loss, ga = ot_loss.value_and_grad(a)
        ga = ga.to(a.dtype)
        centred = ga - torch.dot(a, ga)
        if self.parametrization == 'softmax':
            return a, loss, a * centred
        return a, loss, centred / total

    def _step_gradient(self, idx, ot_loss):
        """``(a, loss, step_idx, step_g)`` for a step, or ``(a, loss, None,
        None)`` when it is skipped: the batch gradient, under DDP the
        gradients of all ranks' batches (gathered, so every rank applies
        the same steps and the vectors stay identical); a non-finite loss
        on any rank skips the step on all."""
        a, loss, gw = self._batch_grad(idx, ot_loss)
        # one sync; a finite sum of finite terms (the terms are O(cost
        # range / sum(w_B)), far from overflowing)
        if not all_ranks_agree(math.isfinite(float(loss + gw.sum()))):
            return a, loss, None, None
        step_idx, step_g = gather_batches(idx, gw.to(self.weights.dtype))
        return a, loss, step_idx, step_g

    @torch.no_grad()
    def update(self, idx, z, ot_loss):
        """torch's momentum SGD over the whole vector (``buf = momentum *
        buf + wd * w + g``, ``w -= lr * buf``, the gradient zero outside the
        batch) on ``weights_momentum``, without autograd: the gradient only
        touches the batch, so the step is three vector operations and the
        finiteness check looks at B numbers, not the whole vector."""
        a, loss, step_idx, step_g = self._step_gradient(idx, ot_loss)
        if step_idx is None:
            return self._skip(a, loss)
        w, buf = self.weights, self.weights_momentum
        buf.mul_(self.momentum)
        if self.weight_decay != 0:
            buf.add_(w, alpha=self.weight_decay)
        buf.index_add_(0, step_idx, step_g)
        w.add_(buf, alpha=-self.lr)
        self._postprocess()
        return self._measure(idx)[0], loss, True

    def _postprocess(self):
        if self.parametrization == 'normalize':
            self.weights.clamp_(min=self.min_weight)
