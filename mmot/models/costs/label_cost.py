# Copyright (c) mmot contributors. All rights reserved.
from mmpretrain.registry import MODELS
from mmot.ot import label_cost
from .base_cost import BaseOTCost


@MODELS.register_module()
class LabelCost(BaseOTCost):
    """Label-aware cost (paper Eq. 7): depends on the labels only, so the
    learned weights are class-level.

    Args:
        mode (str): ``'01'``: 0 for the same class, 1 otherwise (the paper's
            text). ``'mse'``: mean squared difference of the one-hot vectors,
            i.e. 2/K for different classes (the authors' code).
            Defaults to ``'01'``.
    """

    def __init__(self, mode: str = '01'):
        super().__init__()
        if mode not in ('01', 'mse'):
            raise ValueError(f"LabelCost.mode must be '01' or 'mse', got {mode!r}")
        self.mode = mode

    def forward(self, z, y, zq, yq, num_classes):
        return label_cost(y, yq, num_classes, mode=self.mode)
