# Copyright (c) mmot contributors. All rights reserved.
from .digits import DigitsDataset
from .long_tail_dataset import (LongTailDataset, LongTailMetaSet, MetaSubset,
                                long_tail_counts)
from .samplers import *  # noqa: F401,F403
from .transforms import PadModeRandomCrop

__all__ = [
    'DigitsDataset', 'LongTailDataset', 'LongTailMetaSet', 'MetaSubset',
    'long_tail_counts',
    'PadModeRandomCrop'
]
