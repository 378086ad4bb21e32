# Copyright (c) mmot contributors. All rights reserved.
import warnings
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmpretrain.registry import OPTIM_WRAPPERS
from mmot.ot.reweighter import OTReweighter


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that skips the update of an iteration whose loss is
    not finite, with a warning, instead of writing NaN into the model.

    The buffers of the model (BatchNorm running statistics) change in the
    forward pass, before the loss is known: :meth:`optim_context` keeps a
    copy (one fused copy into preallocated tensors) and a skipped iteration
    restores them, so the model is exactly as before the bad batch. Under
    DDP all ranks skip together (the finiteness flag is all-reduced).

    Args:
        skip_non_finite (bool): Turn the guard on. Defaults to True.
        **kwargs: Arguments of mmengine's ``OptimWrapper``.
    """

    def __init__(self, *args, skip_non_finite: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip_non_finite = bool(skip_non_finite)
        self._saved = []  # (buffer, copy) of the last optim_context
        self.skipped = 0

    @contextmanager
    def optim_context(self, model: nn.Module):
        if self.skip_non_finite:
            bufs = _restorable_buffers(model)
            if len(self._saved) != len(bufs) or any(
                    s is not b or c.shape != b.shape
                    for (s, c), b in zip(self._saved, bufs)):
                self._saved = [(b, torch.empty_like(b)) for b in bufs]
            if bufs:
                torch._foreach_copy_([c for _, c in self._saved], bufs)
        with super().optim_context(model):
            yield

    def update_params(self, loss: torch.Tensor, *args, **kwargs) -> None:
        if self.skip_non_finite:
            ok = torch.isfinite(loss.detach()).all().float().reshape(1)
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(ok, op=dist.ReduceOp.MIN)
            if ok.item() < 1:
                self.skipped += 1
                warnings.warn(f'{type(self).__name__}: non-finite loss at '
                              f'update {self._inner_count}; model update '
                              'skipped, buffers restored')
                self.zero_grad()
                with torch.no_grad():
                    for buf, saved in self._saved:
                        buf.copy_(saved)
                self._inner_count += 1
                return
        super().update_params(loss, *args, **kwargs)


def _restorable_buffers(model: nn.Module) -> list:
    """The buffers a skipped update restores: all but the OT re-weighter's
    (its weight step guards itself: a non-finite OT loss or gradient skips
    it; after a finite step its state is valid whatever the model's loss)."""
    skip = {id(b) for m in model.modules() if isinstance(m, OTReweighter)
            for b in m.buffers()}
    return [b for b in model.buffers() if id(b) not in skip]
