# Copyright (c) mmot contributors. All rights reserved.
from .base_cost import BaseOTCost
from .combined_cost import CombinedCost
from .feature_cost import FeatureCost
from .label_cost import LabelCost

__all__ = ['BaseOTCost', 'LabelCost', 'FeatureCost', 'CombinedCost']
