# Copyright (c) mmot contributors. All rights reserved.
import math

import torch
import torch.nn as nn

from mmpretrain.registry import MODELS
from .base_learner import BaseWeightLearner


@MODELS.register_module()
class AttentionWeightNet(BaseWeightLearner):
    """Self-attention weight net (appendix Eq. 13, Table 8): two linear maps
    encode the features to ``d_l``, ``S = (W1 Z)(W2 Z)^T / sqrt(d_l)`` is a
    (B, B) score matrix, ``A = softmax(S)`` row-wise, and the batch measure
    is the column mean of A, ``w_j = mean_i A_ij`` (so sum(w) = 1). Table 8
    lists the (B, B) softmax but not the reduction to B weights; the column
    mean is our reading, stated here.

    Args:
        hidden_dim (int): d_l. Defaults to 128.
        lr (float): beta. Defaults to 1e-3.
        momentum (float): Defaults to 0.9.
        weight_decay (float): Defaults to 0.
    """

    def __init__(self, hidden_dim: int = 128, lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(lr, momentum, weight_decay)
        if isinstance(hidden_dim, bool) or not isinstance(
                hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f'AttentionWeightNet.hidden_dim must be an int >= 1, got '
                             f'{hidden_dim!r}')
        self.hidden_dim = hidden_dim
        self.q = self.k = None
        # where build() puts the nets (the model's device, followed by .to())
        self.register_buffer('anchor', torch.empty(0), persistent=False)

    def build(self, num_samples, labels, class_counts, feat_dim):
        self.q = nn.Linear(feat_dim, self.hidden_dim).to(self.device())
        self.k = nn.Linear(feat_dim, self.hidden_dim).to(self.device())
        self._init_momentum()

    def measure(self, idx, z):
        z = z.float()
        s = self.q(z) @ self.k(z).t() / math.sqrt(self.hidden_dim)
        return torch.softmax(s, dim=1).mean(dim=0)
