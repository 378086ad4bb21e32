# Copyright (c) mmot contributors. All rights reserved.
import warnings
from contextlib import contextmanager

import torch
import torch.nn as nn

from mmpretrain.registry import OPTIM_WRAPPERS
from .skip_non_finite_optim_wrapper import SkipNonFiniteOptimWrapper


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively
    (AVX512-BF16 or AMX, what oneDNN needs for fast bfloat16 kernels).

    Without it, PyTorch's bfloat16 convolutions fall back to slow paths:
    a ResNet-32 training step at batch 128 took 10.6 s in bfloat16 against
    0.83 s in float32 on a 2-core AMD EPYC (Zen 3, AVX2 only), where the
    same step was 1.8x *faster* in bfloat16 on an AVX512-BF16 EPYC
    (``docs/benchmarks/README.md``, "Cost on a 2-core CPU").
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # API gone: ask the ISA level
        return torch.backends.cpu.get_cpu_capability() in (
            'AVX512_BF16', 'AMX')


def bf16_is_fast(device: str = 'cpu') -> bool:
    """Whether bfloat16 autocast speeds training up on ``device`` (a CUDA
    device: when it supports bfloat16; the CPU: :func:`cpu_has_native_bf16`).
    """
    if device == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device == 'cpu' and cpu_has_native_bf16()


@OPTIM_WRAPPERS.register_module()
class BF16AmpOptimWrapper(SkipNonFiniteOptimWrapper):
    """Mixed precision with bfloat16 autocast, on the CPU as on a GPU.

    mmengine's ``AmpOptimWrapper`` refuses to run without a GPU. This wrapper
    runs the forward pass (data preprocessing, model, loss) under
    ``torch.autocast(device, dtype=torch.bfloat16)`` on the device of the
    model's parameters; parameters, gradients and the optimiser state stay in
    float32. bfloat16 has float32's exponent range, so no loss scaling is
    needed. On a 2-core AMD EPYC with AVX512-BF16, a ResNet-32 training
    step at batch 128 took 0.31 s instead of 0.55 s in float32
    (``docs/benchmarks/README.md``). On a CPU without native bfloat16
    (AVX2 only) it is about 10x *slower* than float32: the wrapper then
    warns once (:func:`bf16_is_fast`); use ``OptimWrapper`` there.
    Evaluation (``Runner.val/test``) is not wrapped and runs in float32.

    The OT step of :class:`OTReweighter` always runs in float32 (it turns
    autocast off), so the weights are the same function of the features as
    without this wrapper.

    Example::

        optim_wrapper = dict(type='BF16AmpOptimWrapper',
                             optimizer=dict(type='SGD', lr=0.1, momentum=0.9))

    It skips non-finite updates as :class:`SkipNonFiniteOptimWrapper`
    (``skip_non_finite=False`` turns that off).

    Args:
        **kwargs: Arguments of :class:`SkipNonFiniteOptimWrapper`.
    """

    _warned = False

    @contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        device = param.device.type if param is not None else 'cpu'
        if not BF16AmpOptimWrapper._warned and not bf16_is_fast(device):
            BF16AmpOptimWrapper._warned = True
            what = (f'this CPU has no native bfloat16 (ISA level '
                    f'{torch.backends.cpu.get_cpu_capability()})'
                    if device == 'cpu' else f'{device} has no bfloat16')
            warnings.warn(
                f'BF16AmpOptimWrapper: {what}, so bfloat16 autocast is much '
                'slower than float32 here (a ResNet-32 step: 10.6 s vs 0.83 s '
                "on an AVX2 EPYC); use optim_wrapper=dict(type='OptimWrapper',"
                ' ...) on this machine')
        with super().optim_context(model), torch.autocast(
                device_type=device, dtype=torch.bfloat16):
            yield
