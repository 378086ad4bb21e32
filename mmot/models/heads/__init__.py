# Copyright (c) mmot contributors. All rights reserved.
from .ot_linear_head import OTLinearClsHead

__all__ = ['OTLinearClsHead']
