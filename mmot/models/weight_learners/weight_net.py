# Copyright (c) mmot contributors. All rights reserved.
import torch
import torch.nn as nn

from mmpretrain.registry import MODELS
from .base_learner import BaseWeightLearner


@MODELS.register_module()
class WeightNet(BaseWeightLearner):
    """Amortised weights (paper Eq. 11): ``w = softmax(s)`` over the batch
    with ``s_i = w_att tanh(W_vz z_i)`` on the (detached) features.

    Args:
        hidden_dim (int): A, the attention dimension. Defaults to 128.
        lr (float): beta. Defaults to 1e-3.
        momentum (float): Defaults to 0.9.
        weight_decay (float): Defaults to 0.
    """

    def __init__(self, hidden_dim: int = 128, lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(lr, momentum, weight_decay)
        if isinstance(hidden_dim, bool) or not isinstance(
                hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f'WeightNet.hidden_dim must be an int >= 1, got '
                             f'{hidden_dim!r}')
        self.hidden_dim = hidden_dim
        self.net = None
        # where build() puts the net (the model's device, followed by .to())
        self.register_buffer('anchor', torch.empty(0), persistent=False)

    def build(self, num_samples, labels, class_counts, feat_dim):
        self.net = nn.Sequential(
            nn.Linear(feat_dim, self.hidden_dim), nn.Tanh(),
            nn.Linear(self.hidden_dim, 1)).to(self.device())
        self._init_momentum()

    def measure(self, idx, z):
        return torch.softmax(self.net(z.float()).squeeze(-1), dim=0)
