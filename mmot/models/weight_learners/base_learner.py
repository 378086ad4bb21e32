# Copyright (c) mmot contributors. All rights reserved.
import warnings
from typing import Callable, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and \
        dist.get_world_size() > 1


def _all_ranks_agree(ok: torch.Tensor) -> bool:
    """True only if ``ok`` holds on every rank (so all ranks skip or step
    together)."""
    ok = torch.as_tensor(ok, dtype=torch.float32).reshape(1)
    if _distributed():
        ok = ok.to(_comm_device())
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def _comm_device() -> torch.device:
    if dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _sum_over_ranks(grads) -> None:
    """Sum the learner's gradients over ranks: each rank's OT loss only
    touches its own batch, so the summed gradient carries every rank's
    update and all ranks take the identical step."""
    if not _distributed() or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dev = flat.device
    flat = flat.to(_comm_device())
    dist.all_reduce(flat)
    flat = flat.to(dev)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class BaseWeightLearner(nn.Module):
    """Learns the batch measure P(w) that the OT loss pulls towards Q.

    A learner holds its own parameters and optimiser (SGD with rate beta),
    separate from the model's: the Runner's optimiser never sees them, and
    :class:`OTReweightHook` saves both in checkpoints.

    Subclasses implement :meth:`build` (allocate parameters once the
    training-set size and feature dimension are known) and :meth:`measure`
    (the batch measure, differentiable w.r.t. the learner's parameters).
    :meth:`update` does the paper's step (b) and returns the weights of
    step (c); override it for other schemes.

    Args:
        lr (float): Step size beta of the weight optimiser (0: the weights
            keep their initial values, a control).
        momentum (float): SGD momentum. Defaults to 0.9.
        weight_decay (float): SGD weight decay. Defaults to 0.
    """

    #: whether :meth:`measure` reads the features (weight nets do)
    uses_features = False

    def __init__(self, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__()
        # lr = 0 is allowed: the OT step off, a control of the recipes
        if not lr >= 0:
            raise ValueError(f'{type(self).__name__}.lr must be >= 0, got '
                             f'{lr}')
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.optimizer: Optional[torch.optim.Optimizer] = None

    # -- set-up ------------------------------------------------------------
    def build(self, num_samples: int, labels: torch.Tensor,
              class_counts: torch.Tensor, feat_dim: int) -> None:
        """Allocate parameters. ``labels`` (num_samples,) holds each sample's
        class (-1 for samples outside the training set)."""
        raise NotImplementedError

    def make_optimizer(self) -> None:
        params = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum,
            weight_decay=self.weight_decay) if params else None

    # -- the weights -------------------------------------------------------
    def measure(self, idx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The batch measure P(w): (B,) non-negative, summing to 1."""
        raise NotImplementedError

    def _postprocess(self) -> None:
        """Called after each optimiser step (e.g. a projection)."""

    def update(self, idx: torch.Tensor, z: torch.Tensor,
               ot_loss: Callable[[torch.Tensor], torch.Tensor]
               ) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        """One step of beta on the OT loss, then the new batch weights.

        Returns ``(weights, loss, stepped)``: detached weights after the step
        (Algorithm 1, step (c) uses w^(t+1)), the detached OT loss before
        the step and whether the step was taken. A non-finite loss or
        gradient skips the step with a warning, so the learner's state is
        never poisoned.
        """
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._backward(idx, z, ot_loss)
        ok = torch.isfinite(loss)
        if ok:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                ok = ok & torch.isfinite(p.grad).all()
        ok = _all_ranks_agree(ok)
        if ok:
            _sum_over_ranks([p.grad for p in params])
        else:
            self.optimizer.zero_grad(set_to_none=True)
            warnings.warn(
                f'{type(self).__name__}: non-finite OT loss or gradient '
                '(non-finite features or cost?); weight update skipped')
            with torch.no_grad():
                a = self.measure(idx, z)
            if not torch.isfinite(a).all():
                a = torch.full_like(a, 1.0 / a.numel())
            return a.detach(), loss.detach(), False
        self.optimizer.step()
        with torch.no_grad():
            self._postprocess()
            a_new = self.measure(idx, z)
        return a_new.detach(), loss.detach(), True

    def _backward(self, idx: torch.Tensor, z: torch.Tensor,
                  ot_loss: Callable[[torch.Tensor], torch.Tensor]
                  ) -> torch.Tensor:
        """The OT loss of the current batch measure (detached); sets the
        ``.grad`` of the learner's parameters unless the loss is not finite.
        By autograd through :meth:`measure`; learners with a closed-form
        chain rule override it."""
        loss = ot_loss(self.measure(idx, z))
        if torch.isfinite(loss):
            loss.backward()
        return loss.detach()

    # -- checkpointing -----------------------------------------------------
    def learner_state(self) -> dict:
        return dict(
            params=self.state_dict(),
            optimizer=self.optimizer.state_dict()
            if self.optimizer is not None else None)

    def load_learner_state(self, state: dict) -> None:
        self.load_state_dict(state['params'])
        if self.optimizer is not None and state.get('optimizer') is not None:
            self.optimizer.load_state_dict(state['optimizer'])
