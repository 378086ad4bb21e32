# Copyright (c) mmot contributors. All rights reserved.
from .class_counts_hook import ClassCountsHook
from .drw_hook import DRWHook
from .feature_cache_hook import FeatureCacheHook
from .keep_epochs_checkpoint_hook import KeepEpochsCheckpointHook
from .ot_reweight_hook import OTReweightHook

__all__ = ['OTReweightHook', 'DRWHook', 'ClassCountsHook', 'FeatureCacheHook',
           'KeepEpochsCheckpointHook']
