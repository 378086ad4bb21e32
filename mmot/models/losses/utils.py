# Copyright (c) mmot contributors. All rights reserved.
"""Helpers shared by the long-tail losses."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


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


def counts_not_set(owner: str) -> RuntimeError:
    """The error of a forward pass before the class counts are known."""
    return RuntimeError(
        f'{owner}: `class_counts` is not set: give class_counts=[...] (the '
        'training images of every class) in the loss config, or keep '
        "ClassCountsHook in default_hooks (mmot's default_runtime.py has "
        'it), which reads them from the training dataset before the run')


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
