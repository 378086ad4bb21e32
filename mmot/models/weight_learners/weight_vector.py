# Copyright (c) mmot contributors. All rights reserved.
import math
import warnings

import torch
import torch.nn as nn

from mmpretrain.registry import MODELS
from .base_learner import BaseWeightLearner, _distributed


def effective_number_weights(class_counts: torch.Tensor,
                             beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights (1 - beta) / (1 - beta^n_k) of Cui et al.
    2019, normalised to sum to the number of classes (float64)."""
    counts = class_counts.double().clamp(min=1)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.double), counts))
    return w / w.sum() * len(counts)


def _gather_batches(idx, grad):
    """Every rank's batch indices and gradients, concatenated in rank
    order (the per-batch step applies all of them on every rank, so the
    vectors stay identical)."""
    import torch.distributed as dist
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (idx.cpu(), grad.cpu()))
    idx = torch.cat([p[0] for p in parts]).to(idx.device)
    grad = torch.cat([p[1] for p in parts]).to(grad.device)
    return idx, grad


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

    Two optimiser schemes (``step``):

    - ``'stateful'``: one SGD optimiser over the whole vector, kept across
      iterations (momentum and weight decay act on every entry at every
      step).
    - ``'per_batch'`` (the authors' code, which builds a new SGD over the
      16 batch entries each iteration): one plain step on the batch entries
      only, ``w_B <- w_B - lr * (g_B + weight_decay * w_B)`` - a fresh
      momentum optimiser's first step, so momentum never acts and the other
      entries are untouched. No optimiser state.

    And two kinds of loss weights (``loss_weights``, what the weighted loss
    multiplies the per-sample losses with, summed over the batch):

    - ``'measure'``: the batch measure ``a`` after the step (sums to 1, so
      uniform weights give the mean loss).
    - ``'raw'`` (the authors' code): the raw entries ``w_B`` after the step
      (``sum_i w_i l_i``; with the class-balanced init this is about
      class-balanced, at ~2.7x the mean-loss scale on CIFAR-10-LT IF100).
      P(w) stays the measure of the OT loss.

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
        step (str): ``'stateful'`` or ``'per_batch'``, see above. Defaults
            to ``'stateful'``.
        loss_weights (str): ``'measure'`` or ``'raw'``, see above. Defaults
            to ``'measure'``.
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
                 step: str = 'stateful',
                 loss_weights: str = 'measure',
                 dtype: str = 'float32'):
        super().__init__(lr, momentum, weight_decay)
        for name, value, choices in (
                ('init', init, ('uniform', 'effective_number')),
                ('parametrization', parametrization, ('normalize', 'softmax')),
                ('step', step, ('stateful', 'per_batch')),
                ('loss_weights', loss_weights, ('measure', 'raw')),
                ('dtype', dtype, ('float32', 'float64'))):
            if value not in choices:
                raise ValueError(f'WeightVector.{name} must be ' + ' or '.join(
                    repr(c) for c in choices) + f', got {value!r}')
        for name, value, ok, what in (
                ('weight_decay', weight_decay, weight_decay >= 0, '>= 0'),
                ('momentum', momentum, 0 <= momentum < 1, 'in [0, 1)'),
                ('min_weight', min_weight, min_weight >= 0, '>= 0')):
            if not ok:
                raise ValueError(f'WeightVector.{name} must be {what}, got '
                                 f'{value!r}')
        if step == 'per_batch' and momentum != 0:
            warnings.warn('WeightVector: momentum has no effect with '
                          "step='per_batch' (a fresh optimiser per batch "
                          'never uses its momentum buffer)')
        self.step = step
        self.loss_weights_mode = loss_weights
        self.dtype = getattr(torch, dtype)
        self.init = init
        self.parametrization = parametrization
        self.cb_beta = cb_beta
        self.min_weight = min_weight
        self.weights = nn.Parameter(torch.empty(0))

    def build(self, num_samples, labels, class_counts, feat_dim):
        if self.init == 'uniform':
            w = torch.zeros(num_samples, dtype=self.dtype) \
                if self.parametrization == 'softmax' else \
                torch.ones(num_samples, dtype=self.dtype)
        else:
            cls_w = effective_number_weights(class_counts,
                                             self.cb_beta).to(self.dtype)
            w = torch.ones(num_samples, dtype=self.dtype)
            valid = labels >= 0
            w[valid] = cls_w[labels[valid]]
        self.weights = nn.Parameter(w.to(self.dtype))
        if self.step == 'per_batch':
            self.optimizer = None  # no state: one plain step per batch
        else:
            self.make_optimizer()

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

    def _batch_grad(self, idx, value_and_grad):
        """``(a, loss, g_B)``: the batch measure, its OT loss and the
        gradient w.r.t. the batch entries ``weights[idx]`` by the closed-form
        chain rule through the measure, from ``g = dL/da``
        (``value_and_grad``): with ``<a, g> = sum_i a_i g_i`` it is
        ``a * (g - <a, g>)`` for ``'softmax'`` and ``(g - <a, g>) / sum(w_B)``
        for ``'normalize'`` (w >= 0 always: it starts >= 0 and is clipped at
        ``min_weight``) - what autograd gives, without a graph."""
        a, total = self._measure(idx)
        loss, ga = value_and_grad(a)
        ga = ga.to(a.dtype)
        centred = ga - torch.dot(a, ga)
        if self.parametrization == 'softmax':
            return a, loss, a * centred
        return a, loss, centred / total

    def _backward(self, idx, z, ot_loss):
        """:meth:`_batch_grad` into ``weights.grad`` (repeated indices add
        up, as in autograd). Falls back to autograd for a plain
        callable."""
        value_and_grad = getattr(ot_loss, 'value_and_grad', None)
        if value_and_grad is None:
            return super()._backward(idx, z, ot_loss)
        with torch.no_grad():
            _, loss, gw = self._batch_grad(idx, value_and_grad)
            if not torch.isfinite(loss):
                return loss
            self.weights.grad = torch.zeros_like(self.weights).index_add_(
                0, idx, gw)
        return loss

    def _plain_sgd(self):
        """The momentum SGD step of :meth:`_sgd_step` is torch's."""
        opt = self.optimizer
        if type(opt) is not torch.optim.SGD or len(opt.param_groups) != 1:
            return False
        g = opt.param_groups[0]
        return (g['dampening'] == 0 and not g['nesterov']
                and not g.get('maximize', False)
                and len(g['params']) == 1 and g['params'][0] is self.weights)

    @torch.no_grad()
    def _sgd_step(self, idx, grad_batch):
        """``torch.optim.SGD.step`` (momentum, weight decay, no dampening or
        Nesterov) for a gradient that is zero outside ``idx``, in place and
        on the optimiser's own state (its ``momentum_buffer`` and
        ``param_groups`` hyper-parameters), so checkpoints and the generic
        path stay interchangeable: ``buf = momentum * buf + wd * w + g``,
        ``w -= lr * buf``, three vector operations instead of the
        optimiser's per-call bookkeeping (equal to torch's step up to the
        rounding of that sum; tests/test_reweighter_toy.py)."""
        group = self.optimizer.param_groups[0]
        p = self.weights
        if group['momentum'] == 0:
            buf = torch.zeros_like(p)
        else:
            state = self.optimizer.state[p]
            buf = state.get('momentum_buffer')
            if buf is None:
                buf = state['momentum_buffer'] = torch.zeros_like(p)
            else:
                buf.mul_(group['momentum'])
        if group['weight_decay'] != 0:
            buf.add_(p, alpha=group['weight_decay'])
        buf.index_add_(0, idx, grad_batch)
        p.add_(buf, alpha=-group['lr'])

    @staticmethod
    def _skip(a, loss):
        """A skipped step: warn, keep the weights, return finite ones."""
        warnings.warn(
            'WeightVector: non-finite OT loss or gradient (non-finite '
            'features or cost?); weight update skipped')
        if not torch.isfinite(a).all():
            a = torch.full_like(a, 1.0 / a.numel())
        return a, loss, False

    def loss_weights(self, idx, a):
        """The weights of the per-sample losses of the batch ``idx``: the
        measure ``a`` or the raw entries (``loss_weights='raw'``)."""
        if self.loss_weights_mode == 'raw':
            return self.weights.detach()[idx]
        return a

    @torch.no_grad()
    def _per_batch_update(self, idx, value_and_grad):
        """The authors' step: ``w_B -= lr * (g_B + wd * w_B)`` on the batch
        entries only (a new momentum-SGD's first step). In distributed runs
        every rank applies the steps of all ranks' batches, so the vectors
        stay identical; a non-finite loss on any rank skips the step on all."""
        a, loss, gw = self._batch_grad(idx, value_and_grad)
        ok = math.isfinite(float(loss + gw.sum()))
        if _distributed():
            from .base_learner import _all_ranks_agree
            ok = _all_ranks_agree(torch.tensor(float(ok)))
        if not ok:
            return self._skip(a, loss)
        w = self.weights
        step_idx, step_g = idx, gw.to(w.dtype)
        if _distributed():
            step_idx, step_g = _gather_batches(idx, step_g)
        w_b = w[step_idx]
        w[step_idx] = w_b - self.lr * (step_g + self.weight_decay * w_b)
        self._postprocess()
        return self._measure(idx)[0], loss, True

    def update(self, idx, z, ot_loss):
        """:meth:`BaseWeightLearner.update` without autograd or
        ``optimizer.step()`` when the OT loss gives its gradient
        (``value_and_grad``) and the optimiser is plain SGD: the gradient
        only touches the batch entries, so the step is :meth:`_sgd_step`
        and the finiteness check looks at B numbers, not the whole vector.
        Distributed runs (gradients summed over ranks) take the generic
        path."""
        value_and_grad = getattr(ot_loss, 'value_and_grad', None)
        if self.step == 'per_batch':
            if value_and_grad is None:
                raise TypeError("WeightVector(step='per_batch') needs an OT "
                                'loss with value_and_grad')
            return self._per_batch_update(idx, value_and_grad)
        if value_and_grad is None or _distributed() or not self._plain_sgd():
            return super().update(idx, z, ot_loss)
        with torch.no_grad():
            a, loss, gw = self._batch_grad(idx, value_and_grad)
            # one sync; a finite sum of finite terms (the terms are O(cost
            # range / sum(w_B)), far from overflowing)
            if not math.isfinite(float(loss + gw.sum())):
                return self._skip(a, loss)
            self._sgd_step(idx, gw)
            self._postprocess()
            return self._measure(idx)[0], loss, True

    def _postprocess(self):
        if self.parametrization == 'normalize':
            self.weights.data.clamp_(min=self.min_weight)
