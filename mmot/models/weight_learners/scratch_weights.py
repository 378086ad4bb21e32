# Copyright (c) mmot contributors. All rights reserved.
import torch

from mmpretrain.registry import MODELS
from .base_learner import BaseWeightLearner


@MODELS.register_module()
class ScratchWeights(BaseWeightLearner):
    """Re-estimates the batch weights from uniform at every iteration (the
    "scratch" row of the paper's Table 2): ``num_steps`` steps of SGD
    (rate ``lr``, ``momentum``) on softmax scores starting from zero; nothing
    is kept between iterations.

    Args:
        lr (float): Step size. Defaults to 1.0.
        num_steps (int): Inner steps per batch. Defaults to 10.
        momentum (float): Defaults to 0.9.
    """

    def __init__(self, lr: float = 1.0, num_steps: int = 10,
                 momentum: float = 0.9):
        super().__init__(lr, momentum, 0.0)
        if not (isinstance(num_steps, int) and num_steps >= 1):
            raise ValueError(f'ScratchWeights.num_steps must be an int >= 1, '
                             f'got {num_steps!r}')
        self.num_steps = num_steps

    def build(self, num_samples, labels, class_counts, feat_dim):
        pass

    def measure(self, idx, z):
        return torch.full((len(idx), ), 1.0 / len(idx), dtype=z.dtype,
                          device=z.device)

    def update(self, idx, z, ot_loss):
        """``num_steps`` SGD steps on fresh scores (a local optimiser: the
        scores live for this call only)."""
        with torch.enable_grad():
            s = torch.zeros(len(idx), dtype=z.dtype, device=z.device,
                            requires_grad=True)
            opt = torch.optim.SGD([s], lr=self.lr, momentum=self.momentum)
            first = None
            for _ in range(self.num_steps):
                loss = ot_loss(torch.softmax(s, 0))
                if first is None:
                    first = loss.detach()
                if not torch.isfinite(loss):
                    return self._skip(self.measure(idx, z), first)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return torch.softmax(s.detach(), 0), first, True
