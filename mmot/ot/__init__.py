# Copyright (c) mmot contributors. All rights reserved.
"""Pure-torch optimal-transport math (no mmengine / mmpretrain imports)."""
from .costs import combined_cost, feature_cost, label_cost
from .sinkhorn import (SinkhornResult, entropic_ot, sinkhorn2, sinkhorn2_grad,
                       sinkhorn_log)

__all__ = [
    'SinkhornResult', 'sinkhorn_log', 'sinkhorn2', 'sinkhorn2_grad',
    'entropic_ot', 'label_cost', 'feature_cost', 'combined_cost'
]
