# Copyright (c) mmot contributors. All rights reserved.
from .pad_mode_random_crop import PadModeRandomCrop

__all__ = ['PadModeRandomCrop']
