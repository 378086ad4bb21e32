# Copyright (c) mmot contributors. All rights reserved.
from mmpretrain.registry import MODELS
from mmot.ot import feature_cost, label_cost
from mmot.ot.reweighter import check_number
from .base_cost import BaseOTCost


@MODELS.register_module()
class CombinedCost(BaseOTCost):
    """Combined cost (paper Eq. 9): ``feature_coef * d_fea + label_coef *
    d_lab``.

    The paper's text uses coefficients 1 and 1 with the 0/1 label distance;
    the authors' code uses 0.5 and 0.5 with ``label_mode='mse'``.

    Args:
        feature_coef (float): Weight of the feature cost. Defaults to 1.0.
        label_coef (float): Weight of the label cost. Defaults to 1.0.
        label_mode (str): ``'01'`` or ``'mse'``, see :class:`LabelCost`.
            Defaults to ``'01'``.
        metric (str): Feature distance, see :class:`FeatureCost`.
            Defaults to ``'cosine'``.
    """

    def __init__(self,
                 feature_coef: float = 1.0,
                 label_coef: float = 1.0,
                 label_mode: str = '01',
                 metric: str = 'cosine'):
        super().__init__()
        if label_mode not in ('01', 'mse'):
            raise ValueError("CombinedCost.label_mode must be '01' or 'mse', "
                             f'got {label_mode!r}')
        if metric not in ('cosine', 'euclidean', 'sqeuclidean'):
            raise ValueError("CombinedCost.metric must be 'cosine', "
                             f"'euclidean' or 'sqeuclidean', got {metric!r}")
        check_number('CombinedCost.feature_coef', feature_coef,
                     lambda v: v >= 0, '>= 0')
        check_number('CombinedCost.label_coef', label_coef,
                     lambda v: v >= 0, '>= 0')
        if not feature_coef + label_coef > 0:
            raise ValueError('CombinedCost.feature_coef and label_coef must '
                             'not both be 0, got '
                             f'{feature_coef!r}, {label_coef!r}')
        self.feature_coef = float(feature_coef)
        self.label_coef = float(label_coef)
        self.label_mode = label_mode
        self.metric = metric

    def forward(self, z, y, zq, yq, num_classes):
        cost = feature_cost(z, zq, metric=self.metric)
        if self.feature_coef != 1.0:
            cost = cost * self.feature_coef
        lab = label_cost(y, yq, num_classes, mode=self.label_mode,
                         dtype=cost.dtype)
        return cost.add_(lab, alpha=self.label_coef)
