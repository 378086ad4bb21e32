# Copyright (c) mmot contributors. All rights reserved.
from .attention_weight_net import AttentionWeightNet
from .authors_weight_vector import AuthorsWeightVector
from .base_learner import BaseWeightLearner
from .global_weight_vector import GlobalWeightVector
from .scratch_weights import ScratchWeights
from .weight_net import WeightNet
from .weight_vector import WeightVector, effective_number_weights

__all__ = [
    'BaseWeightLearner', 'WeightVector', 'AuthorsWeightVector', 'ScratchWeights', 'WeightNet',
    'AttentionWeightNet', 'GlobalWeightVector', 'effective_number_weights'
]
