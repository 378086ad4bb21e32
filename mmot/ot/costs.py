# Copyright (c) mmot contributors. All rights reserved.
"""Ground-cost matrices between a source batch and a target (meta) set.

All functions are pure torch, differentiable where it makes sense and
support leading batch dims (``(..., n, d)`` against ``(..., m, d)``).

Paper (Guo et al., NeurIPS'22) Eq. 7-9:

* label-aware cost  ``d_lab(y_i, y_j)`` (0 for the same class, 1 otherwise),
* feature-aware cost ``d_fea(z_i, z_j) = 1 - cos(z_i, z_j)``,
* combined cost ``d = d_fea + d_lab`` (the authors' released code uses
  ``0.5 * d_fea + 0.5 * d_lab`` with the ``'mse'`` label distance).
"""
from typing import Optional

import torch
from torch import Tensor

__all__ = ['label_cost', 'feature_cost', 'combined_cost']

_LABEL_MODES = ('01', 'mse')
_FEATURE_METRICS = ('cosine', 'euclidean', 'sqeuclidean')


def _is_hard(y: Tensor) -> bool:
    return not (y.is_floating_point() or y.is_complex())


def _as_soft(y: Tensor, num_classes: int, dtype: torch.dtype,
             name: str) -> Tensor:
    if _is_hard(y):
        return torch.nn.functional.one_hot(y.long(), num_classes).to(dtype)
    if y.shape[-1] != num_classes:
        raise ValueError(f'`{name}` has {y.shape[-1]} classes on its last dim '
                         f'but num_classes={num_classes}')
    return y.to(dtype)


def label_cost(y_src: Tensor,
               y_tgt: Tensor,
               num_classes: Optional[int] = None,
               mode: str = '01',
               dtype: Optional[torch.dtype] = None) -> Tensor:
    """Label-aware cost matrix.

    Labels may be integer class indices ``(..., n)`` or float (one-hot or
    soft) label matrices ``(..., n, K)``; the two kinds can be mixed.

    * ``mode='01'`` (paper Eq. 7): ``1[y_i != y_j]`` for hard labels. For
      float label vectors it is ``clip(1 - <y_i, y_j>, 0, 1)``, i.e. the
      probability that two independent draws from the label distributions
      disagree (identical to the hard definition for one-hot vectors).
    * ``mode='mse'`` (authors' code): the mean over the ``K`` classes of the
      squared difference of the label vectors,
      ``mean_k (y_ik - y_jk)^2``; for hard labels ``2 / K`` for different
      classes and ``0`` for the same class.

    Args:
        y_src (Tensor): Source labels ``(..., n)`` int or ``(..., n, K)``
            float.
        y_tgt (Tensor): Target labels ``(..., m)`` int or ``(..., m, K)``
            float.
        num_classes (int, optional): Number of classes ``K``. Required for
            ``'mse'`` when both label sets are integer indices; otherwise
            inferred from the float label matrices (and checked if given).
        mode (str): ``'01'`` or ``'mse'``. Defaults to ``'01'``.
        dtype (torch.dtype, optional): Output dtype. Defaults to the float
            labels' dtype, else ``torch.get_default_dtype()``.

    Returns:
        Tensor: Cost matrix ``(..., n, m)``.
    """
    if mode not in _LABEL_MODES:
        raise ValueError(f'`mode` must be one of {_LABEL_MODES}, got {mode!r}')
    hard_s, hard_t = _is_hard(y_src), _is_hard(y_tgt)
    if dtype is None:
        floats = [y.dtype for y in (y_src, y_tgt) if not _is_hard(y)]
        dtype = floats[0] if floats else torch.get_default_dtype()
        for dt in floats[1:]:
            dtype = torch.promote_types(dtype, dt)
    if not dtype.is_floating_point:
        raise ValueError(f'`dtype` must be a floating dtype, got {dtype}')

    if hard_s and hard_t:
        diff = (y_src.unsqueeze(-1) != y_tgt.unsqueeze(-2)).to(dtype)
        if mode == '01':
            return diff
        if num_classes is None or int(num_classes) < 1:
            raise ValueError("label_cost(mode='mse') with integer labels "
                             'needs `num_classes` >= 1, got '
                             f'{num_classes!r}')
        return diff * (2.0 / int(num_classes))

    # at least one side is a (soft) label matrix
    K = (y_tgt if hard_s else y_src).shape[-1]
    if num_classes is not None and int(num_classes) != K:
        raise ValueError(f'`num_classes`={num_classes} does not match the '
                         f'label matrices with K={K} columns')
    ys = _as_soft(y_src, K, dtype, 'y_src')
    yt = _as_soft(y_tgt, K, dtype, 'y_tgt')
    inner = ys @ yt.transpose(-1, -2)
    if mode == '01':
        return (1.0 - inner).clamp(0.0, 1.0)
    sq = (ys * ys).sum(-1).unsqueeze(-1) + (yt * yt).sum(-1).unsqueeze(-2)
    return (sq - 2.0 * inner).clamp_min(0.0) / K


def feature_cost(z_src: Tensor,
                 z_tgt: Tensor,
                 metric: str = 'cosine',
                 eps: float = 1e-8) -> Tensor:
    """Feature-aware cost matrix.

    * ``'cosine'`` (paper Eq. 8): ``1 - cos(z_i, z_j)`` in ``[0, 2]``; norms
      are clamped at ``eps`` (a zero vector has cost 1 to everything).
    * ``'euclidean'``: ``||z_i - z_j||_2`` (``torch.cdist``, whose backward
      is finite at zero distance).
    * ``'sqeuclidean'``: ``||z_i - z_j||_2^2`` via the expansion
      ``|z_i|^2 + |z_j|^2 - 2 <z_i, z_j>`` clamped at 0.

    Args:
        z_src (Tensor): Source features ``(..., n, d)``.
        z_tgt (Tensor): Target features ``(..., m, d)``.
        metric (str): ``'cosine'``, ``'euclidean'`` or ``'sqeuclidean'``.
            Defaults to ``'cosine'``.
        eps (float): Norm clamp for ``'cosine'``. Defaults to 1e-8.

    Returns:
        Tensor: Cost matrix ``(..., n, m)``.
    """
    if metric not in _FEATURE_METRICS:
        raise ValueError(
            f'`metric` must be one of {_FEATURE_METRICS}, got {metric!r}')
    if z_src.dim() < 2 or z_tgt.dim() < 2:
        raise ValueError('`z_src` / `z_tgt` must have shape (..., n, d) / '
                         f'(..., m, d), got {tuple(z_src.shape)} and '
                         f'{tuple(z_tgt.shape)}')
    if z_src.shape[-1] != z_tgt.shape[-1]:
        raise ValueError('feature dims differ: z_src has '
                         f'{z_src.shape[-1]}, z_tgt has {z_tgt.shape[-1]}')
    if not z_src.is_floating_point():
        z_src = z_src.to(torch.get_default_dtype())
    if z_src.dtype != z_tgt.dtype:
        dtype = torch.promote_types(z_src.dtype, z_tgt.dtype)
        z_src, z_tgt = z_src.to(dtype), z_tgt.to(dtype)
    if metric == 'cosine':
        # <z_i, z_j> / (|z_i| |z_j|): the norms scale the (n, m) products
        # instead of normalising both inputs (fewer ops per training step)
        ns = z_src.norm(dim=-1, keepdim=True).clamp_min(eps)
        nt = z_tgt.norm(dim=-1).clamp_min(eps).unsqueeze(-2)
        cos = (z_src @ z_tgt.transpose(-1, -2)) / (ns * nt)
        return (1.0 - cos).clamp(0.0, 2.0)
    if metric == 'euclidean':
        return torch.cdist(z_src, z_tgt, p=2.0)
    sq = (z_src * z_src).sum(-1).unsqueeze(-1) + \
        (z_tgt * z_tgt).sum(-1).unsqueeze(-2)
    return (sq - 2.0 * (z_src @ z_tgt.transpose(-1, -2))).clamp_min(0.0)


def combined_cost(z_src: Optional[Tensor],
                  z_tgt: Optional[Tensor],
                  y_src: Optional[Tensor],
                  y_tgt: Optional[Tensor],
                  num_classes: Optional[int] = None,
                  feat_coef: float = 1.0,
                  label_coef: float = 1.0,
                  metric: str = 'cosine',
                  label_mode: str = '01',
                  eps: float = 1e-8) -> Tensor:
    """Combined cost ``feat_coef * feature_cost + label_coef * label_cost``.

    Paper Eq. 9 uses ``feat_coef = label_coef = 1`` with ``label_mode='01'``;
    the authors' released code uses ``0.5``/``0.5`` with ``'mse'``. A term
    whose coefficient is 0 is skipped (its inputs may then be ``None``).

    Args:
        z_src (Tensor, optional): Source features ``(..., n, d)``.
        z_tgt (Tensor, optional): Target features ``(..., m, d)``.
        y_src (Tensor, optional): Source labels (see :func:`label_cost`).
        y_tgt (Tensor, optional): Target labels (see :func:`label_cost`).
        num_classes (int, optional): Number of classes (see
            :func:`label_cost`).
        feat_coef (float): Weight of the feature cost. Defaults to 1.0.
        label_coef (float): Weight of the label cost. Defaults to 1.0.
        metric (str): Feature metric (see :func:`feature_cost`).
            Defaults to ``'cosine'``.
        label_mode (str): Label distance (see :func:`label_cost`).
            Defaults to ``'01'``.
        eps (float): Norm clamp for the cosine metric. Defaults to 1e-8.

    Returns:
        Tensor: Cost matrix ``(..., n, m)``.
    """
    if feat_coef == 0 and label_coef == 0:
        raise ValueError('combined_cost: `feat_coef` and `label_coef` are '
                         'both 0')
    cost = None
    if feat_coef != 0:
        if z_src is None or z_tgt is None:
            raise ValueError('combined_cost: `z_src` and `z_tgt` are required'
                             f' when feat_coef={feat_coef} != 0')
        cost = feature_cost(z_src, z_tgt, metric=metric, eps=eps) * feat_coef
    if label_coef != 0:
        if y_src is None or y_tgt is None:
            raise ValueError('combined_cost: `y_src` and `y_tgt` are required'
                             f' when label_coef={label_coef} != 0')
        lab = label_cost(y_src,
                         y_tgt,
                         num_classes=num_classes,
                         mode=label_mode,
                         dtype=cost.dtype if cost is not None else None)
        cost = lab * label_coef if cost is None else cost + label_coef * lab
    return cost
