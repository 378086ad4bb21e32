# Copyright (c) mmot contributors. All rights reserved.
"""LDAM loss (Cao et al., NeurIPS 2019)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS
from .utils import (adjusted_cross_entropy, check_class_counts,
                    check_num_classes, counts_not_set)


@MODELS.register_module()
class LDAMLoss(nn.Module):
    r"""Label-Distribution-Aware Margin loss (Cao et al., "Learning
    Imbalanced Datasets with Label-Distribution-Aware Margin Loss",
    NeurIPS 2019).

    Class :math:`j` gets the margin :math:`m_j = C / n_j^{1/4}`, with
    :math:`C` chosen so that the largest margin (the rarest class) equals
    ``max_m``. The margin is subtracted from the true-class logit and the
    result is scaled by ``s`` before the (optionally class-weighted) cross
    entropy:

    .. math::

        \ell(z, y) = w_y \cdot \mathrm{CE}\big(s\,(z - m_y e_y),\ y\big).

    LDAM is designed for a *normalised* linear head: ``z`` should be cosine
    similarities in [-1, 1] (L2-normalised features and class weights), so
    that ``max_m`` (e.g. 0.5) is commensurate with the logits and ``s``
    (e.g. 30) acts as the inverse temperature. With an ordinary linear head
    the margins are negligible next to unnormalised logits; use ``s=1`` there
    if at all.

    ``class_weight`` is what deferred re-weighting (:class:`DRWHook`) switches
    on late in training; like mmpretrain's ``CrossEntropyLoss`` the weighted
    per-sample losses are averaged over ``avg_factor`` (the batch size when
    called from ``ClsHead``), not over the sum of the weights as
    ``F.cross_entropy(weight=...)`` would. With soft (mixup / one-hot)
    labels ``q`` the margin generalises to ``z - m * q``.

    Args:
        class_counts (list[int], optional): Number of training images of
            every class (length K, all > 0). None: set later with
            :meth:`set_class_counts`, which :class:`ClassCountsHook` (in
            mmot's ``default_runtime.py``) calls with the training dataset's
            counts before the run. Defaults to None.
        max_m (float): The largest margin (of the rarest class).
            Defaults to 0.5.
        s (float): Logit scale. Defaults to 30.
        class_weight (list[float], optional): Per-class loss weights
            (length K). Defaults to None.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
    """

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 max_m: float = 0.5,
                 s: float = 30.,
                 class_weight: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean'):
        super().__init__()
        counts = None if class_counts is None else check_class_counts(
            class_counts, 'LDAMLoss')
        if not max_m > 0:
            raise ValueError(f'LDAMLoss: `max_m` must be > 0, got {max_m}')
        if not s > 0:
            raise ValueError(f'LDAMLoss: `s` must be > 0, got {s}')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError("LDAMLoss: `reduction` must be 'none', 'mean' or"
                             f" 'sum', got {reduction!r}")
        self.class_counts: Optional[List[int]] = None
        self.max_m = float(max_m)
        self.s = float(s)
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.class_weight = class_weight
        # per-class margins, filled with the counts (empty until then)
        self.register_buffer('margins', torch.zeros(0), persistent=False)
        if counts is not None:
            self._set_counts(counts)

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Set the training class counts (validated as in the constructor),
        e.g. from the training dataset by :class:`ClassCountsHook`."""
        self._set_counts(check_class_counts(class_counts, 'LDAMLoss'))

    def _set_counts(self, counts: torch.Tensor) -> None:
        weight = self._class_weight
        if weight is not None and len(weight) != len(counts):
            raise ValueError(
                f'LDAMLoss: `class_weight` has {len(weight)} entries but '
                f'`class_counts` has {len(counts)}')
        self.class_counts = [int(n) for n in counts.tolist()]
        margins = counts.pow(-0.25)
        margins = margins * (self.max_m / margins.max())
        self.margins = margins.float().to(self.margins.device)

    @property
    def class_weight(self) -> Optional[list]:
        """Per-class loss weights (list of K floats) or None."""
        return self._class_weight

    @class_weight.setter
    def class_weight(self, value) -> None:
        if value is not None:
            if isinstance(value, torch.Tensor):
                value = value.tolist()
            value = [float(w) for w in value]
            if self.class_counts is not None and \
                    len(value) != len(self.class_counts):
                raise ValueError(
                    f'LDAMLoss: `class_weight` has {len(value)} entries but '
                    f'`class_counts` has {len(self.class_counts)}')
        self._class_weight = value

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): (Cosine) logits, shape (N, K).
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
            raise counts_not_set('LDAMLoss')
        num_classes = len(self.class_counts)
        check_num_classes(cls_score, num_classes, 'LDAMLoss')
        margins = self.margins.to(device=cls_score.device,
                                  dtype=cls_score.dtype)
        if label.dim() == 1:
            target = torch.zeros_like(cls_score).scatter_(
                1, label.view(-1, 1).long(), 1.)
        else:
            target = label.to(cls_score.dtype)
        # s * (z - m_y e_y) == s * z + offset with a per-sample offset.
        logits = self.s * (cls_score - margins * target)
        class_weight = None
        if self._class_weight is not None:
            class_weight = cls_score.new_tensor(self._class_weight)
        loss = adjusted_cross_entropy(
            logits, label, logits.new_zeros(()), class_weight=class_weight)
        if weight is not None:
            weight = weight.float()
        loss = weight_reduce_loss(
            loss, weight=weight, reduction=reduction, avg_factor=avg_factor)
        return self.loss_weight * loss
