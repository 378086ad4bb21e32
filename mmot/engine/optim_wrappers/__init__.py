# Copyright (c) mmot contributors. All rights reserved.
from .bf16_optim_wrapper import (BF16AmpOptimWrapper, bf16_is_fast,
                                 cpu_has_native_bf16)
from .skip_non_finite_optim_wrapper import SkipNonFiniteOptimWrapper

__all__ = ['BF16AmpOptimWrapper', 'SkipNonFiniteOptimWrapper', 'bf16_is_fast',
           'cpu_has_native_bf16']
