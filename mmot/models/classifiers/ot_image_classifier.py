# Copyright (c) mmot contributors. All rights reserved.
from typing import List, Optional

import torch
import torch.nn.functional as F

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

OT_FEATURES = ('loss_forward', 'eval_forward')


@MODELS.register_module()
class OTImageClassifier(ImageClassifier):
    """``ImageClassifier`` with the extra forward passes of the authors'
    OT re-weighting recipe in stage 2.

    Stage 1 (and any stage 2 with the defaults) is exactly
    ``ImageClassifier``. Once :class:`OTReweightHook` has switched the
    head's re-weighting on, :meth:`loss` may add:

    - ``ot_features='eval_forward'`` (the authors' code): the OT features of
      the batch come from a separate forward pass in eval mode, without
      gradients (BatchNorm uses its running statistics), before the
      train-mode forward that computes the loss. The default
      ``'loss_forward'`` takes them, detached, from the loss's own forward
      (one pass, the paper's text).
    - a meta-set term through the network (:meth:`set_meta_batch`, the
      hook's ``meta_loss_source='images'``): every iteration the meta
      images are forwarded in the current (train) mode after the batch and
      ``loss_meta = weight * mean_j CE(meta_j)`` is added; its gradient
      reaches whatever parameters are trained (the classifier, when the
      backbone is frozen), and in train mode the BatchNorm running
      statistics move with it, as in their code.

    Args:
        ot_features (str): ``'loss_forward'`` or ``'eval_forward'``.
            Defaults to ``'loss_forward'``.
        **kwargs: Arguments of ``ImageClassifier``.
    """

    def __init__(self, *args, ot_features: str = 'loss_forward', **kwargs):
        if ot_features not in OT_FEATURES:
            raise ValueError(f'model.ot_features must be one of '
                             f'{OT_FEATURES}, got {ot_features!r}')
        super().__init__(*args, **kwargs)
        self.ot_features = ot_features
        self._meta_inputs: Optional[torch.Tensor] = None
        self._meta_labels: Optional[torch.Tensor] = None
        self._meta_weight = 0.0

    def set_meta_batch(self, inputs: Optional[torch.Tensor],
                       labels: Optional[torch.Tensor],
                       loss_weight: float) -> None:
        """The preprocessed meta images (M, ...) and labels (M,) that
        :meth:`loss` forwards each stage-2 iteration (None: no meta term)."""
        self._meta_inputs = inputs
        self._meta_labels = labels
        self._meta_weight = float(loss_weight)

    def _ot_active(self) -> bool:
        return bool(getattr(self.head, 'ot_active', False))

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        if not self._ot_active():
            return super().loss(inputs, data_samples)
        kwargs = {}
        if self.ot_features == 'eval_forward':
            was_training = self.training
            self.eval()
            with torch.no_grad():
                kwargs['ot_feats'] = self.extract_feat(
                    inputs, stage='pre_logits')
            self.train(was_training)
        feats = self.extract_feat(inputs)
        losses = self.head.loss(feats, data_samples, **kwargs)
        if self._meta_inputs is not None and self._meta_weight > 0:
            meta_feats = self.extract_feat(self._meta_inputs)
            logits = self.head(meta_feats)
            losses['loss_meta'] = self._meta_weight * F.cross_entropy(
                logits, self._meta_labels.to(logits.device))
        return losses
