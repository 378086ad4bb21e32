# Copyright (c) mmot contributors. All rights reserved.
from .class_balanced_sampler import ClassBalancedSampler
from .meta_set_sampler import MetaSetSampler

__all__ = ['ClassBalancedSampler', 'MetaSetSampler']
