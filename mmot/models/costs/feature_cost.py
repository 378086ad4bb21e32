# Copyright (c) mmot contributors. All rights reserved.
from mmpretrain.registry import MODELS
from mmot.ot import feature_cost
from .base_cost import BaseOTCost


@MODELS.register_module()
class FeatureCost(BaseOTCost):
    """Feature-aware cost (paper Eq. 8) on the classifier's input features:
    instance-level weights.

    Args:
        metric (str): ``'cosine'`` (1 - cosine similarity, the paper's
            choice), ``'euclidean'`` or ``'sqeuclidean'``.
            Defaults to ``'cosine'``.
    """

    def __init__(self, metric: str = 'cosine'):
        super().__init__()
        if metric not in ('cosine', 'euclidean', 'sqeuclidean'):
            raise ValueError("FeatureCost.metric must be 'cosine', "
                             f"'euclidean' or 'sqeuclidean', got {metric!r}")
        self.metric = metric

    def forward(self, z, y, zq, yq, num_classes):
        return feature_cost(z, zq, metric=self.metric)
