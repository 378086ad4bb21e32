# Copyright (c) mmot contributors. All rights reserved.
"""Deferred re-weighting (DRW, Cao et al., NeurIPS 2019)."""
from typing import List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmpretrain.registry import HOOKS
from mmot.datasets.long_tail_dataset import training_labels
from mmot.utils import unwrap_model


def drw_class_weights(class_counts: Sequence[int],
                      weighting: str = 'effective_num',
                      beta: float = 0.9999) -> List[float]:
    r"""Per-class weights of deferred re-weighting, normalised to sum to K.

    ``'effective_num'`` (Cui et al., CVPR 2019, as used by LDAM-DRW):
    :math:`w_j \propto (1 - \beta) / (1 - \beta^{n_j})`;
    ``'inverse_freq'``: :math:`w_j \propto 1 / n_j`.

    Args:
        class_counts (Sequence[int]): Training images per class (all > 0).
        weighting (str): ``'effective_num'`` or ``'inverse_freq'``.
        beta (float): Effective-number hyper-parameter in [0, 1).

    Returns:
        list[float]: K weights summing to K.
    """
    counts = [float(n) for n in class_counts]
    if not counts or min(counts) <= 0:
        raise ValueError('DRWHook: `class_counts` must be a non-empty list of '
                         f'positive ints, got {list(class_counts)!r}')
    if weighting == 'effective_num':
        if not 0 <= beta < 1:
            raise ValueError(f'DRWHook: `beta` must be in [0, 1), got {beta}')
        raw = [(1. - beta) / (1. - beta**n) for n in counts]
    elif weighting == 'inverse_freq':
        raw = [1. / n for n in counts]
    else:
        raise ValueError("DRWHook: `weighting` must be 'effective_num' or "
                         f"'inverse_freq', got {weighting!r}")
    total = sum(raw)
    # w / total * K: the order of the class_weight lists the configs used to
    # compute, so the weights are the same floats
    return [w / total * len(raw) for w in raw]


@HOOKS.register_module()
class DRWHook(Hook):
    """Deferred re-weighting: switch the head loss to class-weighted at a
    given epoch (Cao et al., "Learning Imbalanced Datasets with
    Label-Distribution-Aware Margin Loss", NeurIPS 2019).

    Before every training epoch the hook sets ``class_weight`` of the loss
    module found at ``loss_attr`` (default ``model.head.loss_module``):
    the loss's original value (usually None) for epochs ``< start_epoch`` and
    :func:`drw_class_weights` from ``start_epoch`` on. ``runner.epoch`` is
    0-based, so ``start_epoch=160`` re-weights the 161st epoch onwards, as in
    the LDAM-DRW recipe. The state is derived from ``runner.epoch`` each time,
    so resuming a checkpoint lands in the right phase. Works with any loss
    that reads a ``class_weight`` attribute in ``forward`` (mmpretrain's
    ``CrossEntropyLoss``, :class:`LDAMLoss`, :class:`LogitAdjustLoss`).
    Epoch-based training loops only.

    Args:
        start_epoch (int): First (0-based) epoch trained with class weights.
        class_counts (list[int], optional): Training images per class. If
            None, read from the training dataset
            (:func:`~mmot.datasets.long_tail_dataset.training_labels`:
            ``LongTailDataset.class_counts``, through dataset wrappers, else
            the label histogram). Defaults to None.
        weighting (str): ``'effective_num'`` or ``'inverse_freq'``.
            Defaults to ``'effective_num'``.
        beta (float): Effective-number beta. Defaults to 0.9999.
        loss_attr (str): Dotted path of the loss module in the (unwrapped)
            model. Defaults to ``'head.loss_module'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 start_epoch: int,
                 class_counts: Optional[Sequence[int]] = None,
                 weighting: str = 'effective_num',
                 beta: float = 0.9999,
                 loss_attr: str = 'head.loss_module'):
        if not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError('DRWHook: `start_epoch` must be an int >= 0, got '
                             f'{start_epoch!r}')
        self.start_epoch = start_epoch
        self.weighting = weighting
        self.beta = beta
        self.loss_attr = loss_attr
        self.class_counts = None if class_counts is None else [
            int(n) for n in class_counts
        ]
        if self.class_counts is not None:
            # validates weighting / beta / counts early
            drw_class_weights(self.class_counts, weighting, beta)
        self._weights: Optional[List[float]] = None
        self._original = None
        self._captured = False
        self._active: Optional[bool] = None

    def _loss_module(self, runner):
        obj = unwrap_model(runner.model)
        for name in self.loss_attr.split('.'):
            if not hasattr(obj, name):
                raise AttributeError(
                    f'DRWHook: model has no `{self.loss_attr}` (missing '
                    f'`{name}`); set `loss_attr` to the loss module path')
            obj = getattr(obj, name)
        if not hasattr(obj, 'class_weight'):
            raise AttributeError(
                f'DRWHook: {type(obj).__name__} at `{self.loss_attr}` has no '
                '`class_weight` attribute, so it cannot be re-weighted')
        return obj

    def _resolve_counts(self, runner) -> List[int]:
        if self.class_counts is not None:
            return self.class_counts
        dataset = getattr(runner.train_dataloader, 'dataset', None)
        try:
            counts = training_labels(dataset)[1]
        except TypeError as err:
            raise ValueError(
                'DRWHook: `class_counts` was not given and the training '
                f'dataset has none ({err}); pass class_counts=[...] to '
                'DRWHook') from err
        return [int(n) for n in counts.tolist()]

    def before_train_epoch(self, runner) -> None:
        """Set the loss's class weights for ``runner.epoch``."""
        loss = self._loss_module(runner)
        if not self._captured:
            self._original = loss.class_weight
            self._captured = True
        active = runner.epoch >= self.start_epoch
        if active:
            if self._weights is None:
                counts = self._resolve_counts(runner)
                self._weights = drw_class_weights(counts, self.weighting,
                                                  self.beta)
            loss.class_weight = list(self._weights)
        else:
            loss.class_weight = self._original
        if active != self._active:
            state = (f'{self.weighting} class weights' if active else
                     'the original class weights')
            print_log(
                f'DRWHook: epoch {runner.epoch}: using {state}',
                logger='current')
            self._active = active
