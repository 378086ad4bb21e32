# Copyright (c) mmot contributors. All rights reserved.
import warnings
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine import dist

from mmot.ot.reweighter import check_number, resize_


def distributed() -> bool:
    return dist.get_world_size() > 1


def all_ranks_agree(ok) -> bool:
    """True only if ``ok`` holds on every rank (so all ranks skip or step
    together)."""
    flag = torch.tensor([1.0 if bool(ok) else 0.0])
    if distributed():
        dist.all_reduce(flag, op='min')
    return bool(flag.item() > 0)


def gather_batches(idx: torch.Tensor, grad: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every rank's batch indices and gradients, concatenated in rank
    order (a per-example learner applies all of them on every rank, so its
    weights stay identical; batch sizes may differ between ranks)."""
    if not distributed():
        return idx, grad
    parts = dist.all_gather_object((idx.cpu(), grad.cpu()))
    return (torch.cat([p[0] for p in parts]).to(idx.device),
            torch.cat([p[1] for p in parts]).to(grad.device))


class BaseWeightLearner(nn.Module):
    """Learns the batch measure P(w) that the OT loss pulls towards Q.

    The interface every learner implements (and nothing else is asked of
    it):

    - :meth:`build` ``(num_samples, labels, class_counts, feat_dim)``:
      allocate the state once the training set and the OT feature width are
      known (before training, on the module's device);
    - :meth:`measure` ``(idx, z)``: the batch measure P(w), (B,), >= 0,
      summing to 1;
    - :meth:`update` ``(idx, z, ot_loss) -> (a, loss, stepped)``: one step
      of beta on the OT loss, then the batch measure after it. ``ot_loss``
      is an :class:`~mmot.ot.reweighter.OTLoss` (callable and
      ``value_and_grad``) for batch learners, a
      :class:`~mmot.ot.reweighter.GlobalOTProblem` for the learners with
      ``is_global = True`` (the re-weighter hands over the one it reads off
      this attribute);
    - :meth:`loss_weights` ``(idx, a)``: what multiplies the per-sample
      losses (``a`` unless a learner says otherwise).

    **Where the step runs.** Inside the model's ``loss``, through the
    re-weighter, between the feature pass and the weighted loss of the same
    iteration: Algorithm 1 weights the loss of step (c) with the w^(t+1) of
    step (b), so the step cannot wait for ``train_step``'s update after the
    loss, and under DDP only the forward runs through the wrapper (as
    BYOL's target network is updated inside its loss). The step is not the
    Runner's: the learner's tensors are buffers, or parameters created in
    :meth:`build` (after the Runner built its optimiser) with
    ``requires_grad=False`` outside the step, so neither the Runner's
    optimiser nor DDP's gradient reduction ever sees them. Its SGD (rate
    beta, momentum, weight decay) is written out over buffers
    (``<name>_momentum``), which ``state_dict`` carries.

    Args:
        lr (float): Step size beta of the weight optimiser (0: the weights
            keep their initial values, a control).
        momentum (float): SGD momentum. Defaults to 0.9.
        weight_decay (float): SGD weight decay. Defaults to 0.
    """

    #: True: ``update`` gets a GlobalOTProblem (the whole training set)
    is_global = False

    def __init__(self, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__()
        name = type(self).__name__
        # lr = 0 is allowed: the OT step off, a control of the recipes
        check_number(f'{name}.lr', lr, lambda v: v >= 0, '>= 0')
        check_number(f'{name}.momentum', momentum, lambda v: 0 <= v < 1,
                     'in [0, 1)')
        check_number(f'{name}.weight_decay', weight_decay,
                     lambda v: v >= 0, '>= 0')
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)

    # -- set-up ------------------------------------------------------------
    def build(self, num_samples: int, labels: torch.Tensor,
              class_counts: torch.Tensor, feat_dim: int) -> None:
        """Allocate the state. ``labels`` (num_samples,) holds each sample's
        class (-1 for samples outside the training set)."""
        raise NotImplementedError

    def device(self) -> torch.device:
        """Where the learner's state lives (it follows ``.to()``)."""
        for t in list(self.buffers()) + list(self.parameters()):
            return t.device
        return torch.device('cpu')

    def _learned(self) -> List[Tuple[str, nn.Parameter]]:
        return list(self.named_parameters())

    def _init_momentum(self) -> None:
        """One momentum buffer per learned parameter (``<name>_momentum``,
        dots as underscores); parameters stay out of autograd between
        steps."""
        for name, p in self._learned():
            p.requires_grad_(False)
            self.register_buffer(name.replace('.', '_') + '_momentum',
                                 torch.zeros_like(p))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint loaded before build() (evaluation, a fresh model)
        # sizes the lazily sized buffers
        for name, buf in self.named_buffers(recurse=False):
            value = state_dict.get(prefix + name)
            if value is not None and buf.numel() == 0 and value.numel():
                resize_(buf, value.shape, value.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the weights -------------------------------------------------------
    def measure(self, idx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The batch measure P(w): (B,) non-negative, summing to 1."""
        raise NotImplementedError

    def loss_weights(self, idx: torch.Tensor, a: torch.Tensor
                     ) -> torch.Tensor:
        """The weights of the batch's per-sample losses."""
        return a

    def _postprocess(self) -> None:
        """Called after each step (e.g. a projection)."""

    @torch.no_grad()
    def _sgd(self, grads: Dict[str, torch.Tensor]) -> None:
        """``torch.optim.SGD``'s step (no dampening or Nesterov):
        ``buf = momentum * buf + (g + wd * p)``, ``p -= lr * buf``."""
        for name, p in self._learned():
            d = grads[name]
            if self.weight_decay:
                d = d + self.weight_decay * p
            buf = getattr(self, name.replace('.', '_') + '_momentum')
            buf.mul_(self.momentum).add_(d)
            p.sub_(self.lr * buf)

    def update(self, idx: torch.Tensor, z: torch.Tensor, ot_loss
               ) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        """One step of beta on the OT loss, by autograd through
        :meth:`measure`, then the new batch measure.

        Returns ``(weights, loss, stepped)``: detached weights after the step
        (Algorithm 1, step (c) uses w^(t+1)), the detached OT loss before
        the step and whether the step was taken. A non-finite loss or
        gradient (on any rank) skips the step with a warning, so the
        learner's state is never poisoned. Under DDP the gradients are
        summed over ranks (each rank's OT loss touches its own batch only),
        so every rank takes the identical step.
        """
        named = self._learned()
        params = [p for _, p in named]
        with torch.enable_grad():
            for p in params:
                p.requires_grad_(True)
            try:
                loss = ot_loss(self.measure(idx, z))
                grads = torch.autograd.grad(loss, params, allow_unused=True) \
                    if torch.isfinite(loss) else None
            finally:
                for p in params:
                    p.requires_grad_(False)
        ok = grads is not None
        if ok:
            grads = [torch.zeros_like(p) if g is None else g
                     for p, g in zip(params, grads)]
            ok = all(bool(torch.isfinite(g).all()) for g in grads)
        if not all_ranks_agree(ok):
            return self._skip(self.measure(idx, z).detach(), loss.detach())
        if distributed():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            grads = list(flat.split([g.numel() for g in grads]))
        self._sgd({n: g.view_as(p) for (n, p), g in zip(named, grads)})
        with torch.no_grad():
            self._postprocess()
            return self.measure(idx, z).detach(), loss.detach(), True

    def _skip(self, a: torch.Tensor, loss: torch.Tensor):
        """A skipped step: warn, keep the state, return finite weights."""
        warnings.warn(
            f'{type(self).__name__}: non-finite OT loss or gradient '
            '(non-finite features or cost?); weight update skipped')
        if not torch.isfinite(a).all():
            a = torch.full_like(a, 1.0 / a.numel())
        return a, loss, False
