# Copyright (c) mmot contributors. All rights reserved.
import torch
import torch.nn as nn


class BaseOTCost(nn.Module):
    """Cost between training samples and the meta support points.

    Subclass it and register into mmpretrain's ``MODELS`` to use your own cost
    (``model.reweighter.cost=dict(type='MyCost')``, built by
    :class:`OTImageClassifier`).

    ``forward(z, y, zq, yq, num_classes)`` gets the batch features ``z``
    (B, E) and labels ``y`` (B,) or soft labels (B, K), the meta support
    features ``zq`` (M, E) and labels ``yq`` (M,), and returns a (B, M) cost.
    """


    def forward(self, z: torch.Tensor, y: torch.Tensor, zq: torch.Tensor,
                yq: torch.Tensor, num_classes: int) -> torch.Tensor:
        raise NotImplementedError
