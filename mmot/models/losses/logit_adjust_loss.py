# Copyright (c) mmot contributors. All rights reserved.
"""Logit-adjusted loss (Menon et al., ICLR 2021)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS
from .utils import (adjusted_cross_entropy, check_class_counts,
                    check_num_classes, counts_not_set)


@MODELS.register_module()
class LogitAdjustLoss(nn.Module):
    r"""Logit-adjusted softmax cross entropy (Menon et al., "Long-tail
    learning via logit adjustment", ICLR 2021).

    .. math::

        \ell(z, y) = -\log \frac{\exp(z_y + \tau \log \pi_y)}
                                {\sum_j \exp(z_j + \tau \log \pi_j)},
        \qquad \pi_j = n_j / \sum_i n_i.

    The raw logits are used at test time. With ``tau=1`` this equals
    :class:`BalancedSoftmaxLoss` (the constant :math:`\log \sum_i n_i`
    cancels in the softmax). The post-hoc counterpart (train with plain CE,
    subtract :math:`\tau \log \pi` at test time) is
    :func:`mmot.ot.posthoc.logit_adjust_posthoc`.

    Args:
        class_counts (list[int], optional): Number of training images of
            every class (length K, all > 0). None: set later with
            :meth:`set_class_counts`, which :class:`ClassCountsHook` (in
            mmot's ``default_runtime.py``) calls with the training dataset's
            counts before the run. Defaults to None.
        tau (float): Temperature of the adjustment. Defaults to 1.0.
        class_weight (list[float], optional): Per-class loss weights
            (length K). Defaults to None.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        owner (str): Name used in error messages (for subclasses).
    """

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 tau: float = 1.0,
                 class_weight: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 owner: str = 'LogitAdjustLoss'):
        super().__init__()
        self.owner = owner
        counts = None if class_counts is None else check_class_counts(
            class_counts, owner)
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"{owner}: `reduction` must be 'none', "
                             f"'mean' or 'sum', got {reduction!r}")
        self.class_counts: Optional[List[int]] = None
        self.tau = float(tau)
        self.class_weight = class_weight
        self.loss_weight = loss_weight
        self.reduction = reduction
        # log pi, filled with the counts (empty until then)
        self.register_buffer('log_prior', torch.zeros(0), persistent=False)
        if counts is not None:
            self._set_counts(counts)

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Set the training class counts (validated as in the constructor),
        e.g. from the training dataset by :class:`ClassCountsHook`."""
        self._set_counts(check_class_counts(class_counts, self.owner))

    def _set_counts(self, counts: torch.Tensor) -> None:
        if self.class_weight is not None and \
                len(self.class_weight) != len(counts):
            raise ValueError(
                f'LogitAdjustLoss: `class_weight` has '
                f'{len(self.class_weight)} entries but `class_counts` has '
                f'{len(counts)}')
        self.class_counts = [int(n) for n in counts.tolist()]
        log_prior = (counts / counts.sum()).log()
        self.log_prior = log_prior.float().to(self.log_prior.device)

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): Logits, shape (N, K).
            label (torch.Tensor): Class indices (N, ) or soft targets (N, K).
            weight (torch.Tensor, optional): Per-sample weights, shape (N, ).
            avg_factor (float, optional): Denominator of the mean.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            torch.Tensor: The loss.
        """
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override if reduction_override else \
            self.reduction
        if self.class_counts is None:
            raise counts_not_set(self.owner)
        check_num_classes(cls_score, len(self.class_counts), self.owner)
        class_weight = None
        if self.class_weight is not None:
            class_weight = cls_score.new_tensor(self.class_weight)
        offset = self.tau * self.log_prior.to(cls_score.device)
        loss = adjusted_cross_entropy(
            cls_score, label, offset, class_weight=class_weight)
        if weight is not None:
            weight = weight.float()
        loss = weight_reduce_loss(
            loss, weight=weight, reduction=reduction, avg_factor=avg_factor)
        return self.loss_weight * loss
