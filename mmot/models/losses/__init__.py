# Copyright (c) mmot contributors. All rights reserved.
from .balanced_softmax_loss import BalancedSoftmaxLoss
from .ldam_loss import LDAMLoss
from .logit_adjust_loss import LogitAdjustLoss

__all__ = ['BalancedSoftmaxLoss', 'LDAMLoss', 'LogitAdjustLoss']
