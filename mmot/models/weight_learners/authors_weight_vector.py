# Copyright (c) mmot contributors. All rights reserved.
import torch

from mmpretrain.registry import MODELS
from mmot.ot.reweighter import resize_
from .weight_vector import WeightVector


@MODELS.register_module()
class AuthorsWeightVector(WeightVector):
    """The weight vector as the authors' public code (``OT_train.py``)
    learns and uses it, where it differs from :class:`WeightVector` (the
    paper's text):

    - w are free scores, ``a = softmax(w_B)`` within the batch, initialised
      to the class-balanced effective-number weights (``init``);
    - the step: their code builds a new momentum SGD over the batch entries
      each iteration, so each step is a fresh optimiser's first one,
      ``w_B <- w_B - lr * (g_B + weight_decay * w_B)``, on the batch entries
      only; momentum never acts and nothing is kept but w;
    - the loss weights are the raw entries ``w_B`` after the step
      (``sum_i w_i l_i``; with the class-balanced init about class-balanced,
      at ~2.7x the mean-loss scale on CIFAR-10-LT IF100); softmax(w_B) is
      only the OT measure P(w).

    Args:
        lr (float): Step size (theirs: 1e-2). Defaults to 1e-2.
        weight_decay (float): Theirs: 5e-4. Defaults to 5e-4.
        init (str): ``'effective_number'`` (theirs) or ``'uniform'`` (raw
            weights 0, a control). Defaults to ``'effective_number'``.
        cb_beta (float): beta of the effective number. Defaults to 0.9999.
        dtype (str): Storage dtype of w, ``'float32'`` or ``'float64'``.
            Defaults to ``'float32'``.
    """

    def __init__(self,
                 lr: float = 1e-2,
                 weight_decay: float = 5e-4,
                 init: str = 'effective_number',
                 cb_beta: float = 0.9999,
                 dtype: str = 'float32'):
        super().__init__(lr=lr, momentum=0.0, weight_decay=weight_decay,
                         init=init, parametrization='softmax',
                         cb_beta=cb_beta, dtype=dtype)

    def build(self, num_samples, labels, class_counts, feat_dim):
        super().build(num_samples, labels, class_counts, feat_dim)
        resize_(self.weights_momentum, (0, ))  # no optimiser state

    def loss_weights(self, idx, a):
        return self.weights[idx]

    @torch.no_grad()
    def update(self, idx, z, ot_loss):
        a, loss, step_idx, step_g = self._step_gradient(idx, ot_loss)
        if step_idx is None:
            return self._skip(a, loss)
        w = self.weights
        w_b = w[step_idx]
        w[step_idx] = w_b - self.lr * (step_g + self.weight_decay * w_b)
        return self._measure(idx)[0], loss, True
