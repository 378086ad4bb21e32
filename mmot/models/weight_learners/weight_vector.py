# Copyright (c) mmot contributors. All rights reserved.
import torch
import torch.nn as nn

from mmpretrain.registry import MODELS
from .base_learner import BaseWeightLearner


def effective_number_weights(class_counts: torch.Tensor,
                             beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights (1 - beta) / (1 - beta^n_k) of Cui et al.
    2019, normalised to sum to the number of classes."""
    counts = class_counts.double().clamp(min=1)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.double), counts))
    return (w / w.sum() * len(counts)).float()


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
    """

    def __init__(self,
                 lr: float = 1e-3,
                 momentum: float = 0.9,
                 weight_decay: float = 0.0,
                 init: str = 'uniform',
                 parametrization: str = 'normalize',
                 cb_beta: float = 0.9999,
                 min_weight: float = 1e-4):
        super().__init__(lr, momentum, weight_decay)
        if init not in ('uniform', 'effective_number'):
            raise ValueError("WeightVector.init must be 'uniform' or "
                             f"'effective_number', got {init!r}")
        if parametrization not in ('normalize', 'softmax'):
            raise ValueError("WeightVector.parametrization must be "
                             f"'normalize' or 'softmax', got {parametrization!r}")
        self.init = init
        self.parametrization = parametrization
        self.cb_beta = cb_beta
        self.min_weight = min_weight
        self.weights = nn.Parameter(torch.empty(0))

    def build(self, num_samples, labels, class_counts, feat_dim):
        if self.init == 'uniform':
            w = torch.zeros(num_samples) if self.parametrization == 'softmax' \
                else torch.ones(num_samples)
        else:
            cls_w = effective_number_weights(class_counts, self.cb_beta)
            w = torch.ones(num_samples)
            valid = labels >= 0
            w[valid] = cls_w[labels[valid]]
        self.weights = nn.Parameter(w)
        self.make_optimizer()

    def measure(self, idx, z):
        w = self.weights[idx]
        if self.parametrization == 'softmax':
            return torch.softmax(w, dim=0)
        w = w.clamp(min=0)
        return w / w.sum().clamp(min=torch.finfo(w.dtype).tiny)

    def _backward(self, idx, z, ot_loss):
        """Closed-form chain rule through the batch measure, no autograd
        graph: with ``g = dL/da`` (from ``ot_loss.value_and_grad``) and
        ``<a, g> = sum_i a_i g_i``, the gradient w.r.t. the batch entries is
        ``a * (g - <a, g>)`` for ``'softmax'`` and ``(g - <a, g>) / sum(w_B)``
        (where ``w >= 0``) for ``'normalize'`` - what autograd gives, at a
        fraction of the cost for a 16-sample batch. Repeated indices add up,
        as in autograd. Falls back to autograd for a plain callable."""
        value_and_grad = getattr(ot_loss, 'value_and_grad', None)
        if value_and_grad is None:
            return super()._backward(idx, z, ot_loss)
        with torch.no_grad():
            w = self.weights[idx]
            a = self.measure(idx, z)
            loss, ga = value_and_grad(a)
            if not torch.isfinite(loss):
                return loss
            ga = ga.to(w.dtype)
            centred = ga - (a * ga).sum()
            if self.parametrization == 'softmax':
                gw = a * centred
            else:
                total = w.clamp(min=0).sum().clamp(min=torch.finfo(w.dtype).tiny)
                gw = centred / total * (w >= 0)
            self.weights.grad = torch.zeros_like(self.weights).index_add_(
                0, idx, gw)
        return loss

    def _postprocess(self):
        if self.parametrization == 'normalize':
            self.weights.data.clamp_(min=self.min_weight)
