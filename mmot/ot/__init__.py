# Copyright (c) mmot contributors. All rights reserved.
"""Optimal-transport math in pure torch (one solver: :mod:`.solver` on the
problems of :mod:`.kernels`); no mmengine / mmpretrain imports."""
from .authors import AuthorsSinkhornResult, sinkhorn_authors
from .costs import combined_cost, feature_cost, label_cost
from .sinkhorn import (SinkhornResult, entropic_ot, sinkhorn2, sinkhorn2_grad,
                       sinkhorn_log)

__all__ = [
    'SinkhornResult', 'sinkhorn_log', 'sinkhorn2', 'sinkhorn2_grad',
    'entropic_ot', 'sinkhorn_authors', 'AuthorsSinkhornResult', 'label_cost', 'feature_cost', 'combined_cost'
]
