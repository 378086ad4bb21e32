# Copyright (c) mmot contributors. All rights reserved.
from .two_stage_lr import TwoStageLR

__all__ = ['TwoStageLR']
