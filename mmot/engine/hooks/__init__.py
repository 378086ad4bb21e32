# Copyright (c) mmot contributors. All rights reserved.
from .drw_hook import DRWHook
from .ot_reweight_hook import OTReweightHook

__all__ = ['OTReweightHook', 'DRWHook']
