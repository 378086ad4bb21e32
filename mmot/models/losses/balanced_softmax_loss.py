# Copyright (c) mmot contributors. All rights reserved.
"""Balanced Softmax loss (Ren et al., NeurIPS 2020, "BALMS")."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS


def check_class_counts(class_counts, owner: str) -> torch.Tensor:
    """Validate ``class_counts`` and return it as a float64 tensor.

    Args:
        class_counts (Sequence[int]): Number of training images per class.
        owner (str): Name of the caller, used in error messages.

    Returns:
        torch.Tensor: The counts, shape (K, ), dtype float64.
    """
    if class_counts is None:
        raise ValueError(f'{owner}: `class_counts` is required (a list with '
                         'the number of training images of every class)')
    if hasattr(class_counts, 'tolist'):  # torch.Tensor / np.ndarray
        class_counts = class_counts.tolist()
    if isinstance(class_counts, (str, bytes)) or not isinstance(
            class_counts, Sequence):
        raise ValueError(f'{owner}: `class_counts` must be a list of ints, '
                         f'got {type(class_counts).__name__}')
    if len(class_counts) == 0:
        raise ValueError(f'{owner}: `class_counts` is empty')
    counts = []
    for j, n in enumerate(class_counts):
        if isinstance(n, bool) or not float(n).is_integer():
            raise ValueError(f'{owner}: `class_counts[{j}]` must be an '
                             f'integer, got {n!r}')
        if n <= 0:
            raise ValueError(f'{owner}: `class_counts[{j}]` must be > 0, '
                             f'got {n!r} (every class needs at least one '
                             'training image)')
        counts.append(float(n))
    return torch.tensor(counts, dtype=torch.float64)


def check_num_classes(cls_score: torch.Tensor, num_classes: int,
                      owner: str) -> None:
    """Raise a ValueError naming ``class_counts`` if the logits disagree."""
    if cls_score.dim() != 2 or cls_score.size(-1) != num_classes:
        raise ValueError(
            f'{owner}: `class_counts` has {num_classes} entries but the '
            f'classification scores have shape {tuple(cls_score.shape)} '
            f'(expected (N, {num_classes}))')


def adjusted_cross_entropy(cls_score: torch.Tensor,
                           label: torch.Tensor,
                           offset: torch.Tensor,
                           class_weight: Optional[torch.Tensor] = None
                           ) -> torch.Tensor:
    """Element-wise cross entropy of ``cls_score + offset``.

    ``label`` is either a (N, ) tensor of class indices or a (N, K) tensor of
    (soft / one-hot) targets, as produced by mmpretrain's batch augments.
    """
    logits = cls_score + offset.to(cls_score.dtype)
    if label.dim() == 1:
        return F.cross_entropy(
            logits, label, weight=class_weight, reduction='none')
    if label.shape != cls_score.shape:
        raise ValueError('soft labels must have shape '
                         f'{tuple(cls_score.shape)}, got {tuple(label.shape)}')
    loss = -label * F.log_softmax(logits, dim=-1)
    if class_weight is not None:
        loss = loss * class_weight
    return loss.sum(dim=-1)


@MODELS.register_module()
class BalancedSoftmaxLoss(nn.Module):
    r"""Balanced Softmax loss (Ren et al., "Balanced Meta-Softmax for
    Long-Tailed Visual Recognition", NeurIPS 2020).

    The training label distribution is folded into the softmax (BALMS
    appendix, Eqn. 10: :math:`\hat\phi_j = n_j e^{\eta_j} / \sum_i n_i
    e^{\eta_i}`), i.e. the loss is the ordinary cross entropy of the shifted
    logits

    .. math::

        \ell(\eta, y) = -\log \frac{\exp(\eta_y + \log n_y)}
                                   {\sum_j \exp(\eta_j + \log n_j)}.

    At test time the raw logits :math:`\eta` are used, so the model predicts
    for a balanced label distribution. Per-sample ``weight`` and
    ``avg_factor`` behave as in mmpretrain's ``CrossEntropyLoss``.

    Args:
        class_counts (list[int]): Number of training images of every class
            (length K, all > 0).
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
    """

    def __init__(self,
                 class_counts: Sequence[int],
                 loss_weight: float = 1.0,
                 reduction: str = 'mean'):
        super().__init__()
        counts = check_class_counts(class_counts, 'BalancedSoftmaxLoss')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError("BalancedSoftmaxLoss: `reduction` must be 'none',"
                             f" 'mean' or 'sum', got {reduction!r}")
        self.class_counts = [int(n) for n in counts.tolist()]
        self.loss_weight = loss_weight
        self.reduction = reduction
        # Not persistent: keeps checkpoints loadable into heads with any loss.
        self.register_buffer(
            'log_counts', counts.log().float(), persistent=False)

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
        check_num_classes(cls_score, len(self.class_counts),
                          'BalancedSoftmaxLoss')
        loss = adjusted_cross_entropy(cls_score, label,
                                      self.log_counts.to(cls_score.device))
        if weight is not None:
            weight = weight.float()
        loss = weight_reduce_loss(
            loss, weight=weight, reduction=reduction, avg_factor=avg_factor)
        return self.loss_weight * loss
