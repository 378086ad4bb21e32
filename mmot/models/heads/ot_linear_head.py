# Copyright (c) mmot contributors. All rights reserved.
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class OTLinearClsHead(LinearClsHead):
    """``LinearClsHead`` that applies OT re-weighting in stage 2.

    Until :class:`OTReweightHook` switches stage 2 on, it is exactly
    mmpretrain's ``LinearClsHead`` (mean loss over the batch). In stage 2,
    :meth:`loss` passes the classifier's input features of *this* forward
    pass (detached), the labels and each sample's ``sample_idx`` to the
    hook's re-weighter, which takes one step on the OT loss and returns
    batch weights ``a`` (``a_i >= 0``, ``sum_i a_i = 1``). The loss is then

        loss     = sum_i a_i * l_i                (the configured loss module,
                                                   ``weight=a, avg_factor=1``)
        loss_meta = meta_loss_weight * mean_j l(meta_j)   (if > 0)

    With uniform weights this equals the mean loss of stage 1. ``loss_meta``
    is the authors'-code term (weight 10): the classifier applied to the
    cached meta features (refreshed by the hook), so it trains the classifier
    only. Extra logged values: ``ot_dist`` (the OT loss) and
    ``ot_w_max`` (max of B * the loss weights) and, for the authors'
    solver, ``ot_iters``. With a learner whose ``loss_weights='raw'`` (the
    authors' code) the loss multiplies the raw weights ``w_B`` instead of
    ``a``.

    Args:
        normalized (bool): Cosine classifier as in LDAM's ``NormedLinear``
            (features and class weights L2-normalised, no bias). Use it with
            ``LDAMLoss``. Defaults to False.
        **kwargs: Arguments of ``LinearClsHead``.
    """

    def __init__(self, *args, normalized: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalized = normalized
        if normalized:
            self.fc.bias = None
        # Set by OTReweightHook; kept out of the module tree on purpose so
        # the learner's parameters never reach the model's optimiser.
        self.__dict__['reweighter'] = None
        self.__dict__['ot_active'] = False
        self.__dict__['meta_loss_weight'] = 0.0

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        pre_logits = self.pre_logits(feats)
        return self.classify(pre_logits)

    def classify(self, pre_logits: torch.Tensor) -> torch.Tensor:
        if self.normalized:
            return F.normalize(pre_logits, dim=1) @ F.normalize(
                self.fc.weight, dim=1).t()
        return self.fc(pre_logits)

    @staticmethod
    def _sample_indices(data_samples: List[DataSample],
                        device) -> torch.Tensor:
        try:  # attribute access: .metainfo builds a dict per sample
            idx = [int(s.sample_idx) for s in data_samples]
        except AttributeError:
            raise KeyError(
                'OT re-weighting needs each sample\'s "sample_idx": keep it in '
                'the PackInputs meta_keys of the training pipeline') from None
        return torch.tensor(idx, dtype=torch.long, device=device)

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             ot_feats: Optional[torch.Tensor] = None, **kwargs) -> dict:
        """The loss; in stage 2 with the OT batch weights. ``ot_feats``
        (B, E): the features the weights are computed from, when they do not
        come from this forward pass (``OTImageClassifier``'s
        ``ot_features='eval_forward'``)."""
        rw = self.reweighter
        if rw is None or not self.ot_active:
            return super().loss(feats, data_samples, **kwargs)
        pre_logits = self.pre_logits(feats)
        cls_score = self.classify(pre_logits)
        if 'gt_score' in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples])
        else:
            target = torch.cat([s.gt_label for s in data_samples])
        idx = self._sample_indices(data_samples, cls_score.device)
        weights, stats = rw(pre_logits if ot_feats is None else ot_feats,
                            target, idx)
        # float32 weights also when the scores are bfloat16 (autocast)
        weights = weights.to(torch.promote_types(weights.dtype, cls_score.dtype))
        # sum_i w_i l_i over the per-sample losses of the configured module
        # (its weight= path would round float64 weights to float32)
        per_sample = self.loss_module(
            cls_score, target, reduction_override='none', **kwargs)
        per_sample = per_sample.reshape(len(weights), -1).sum(dim=1)
        losses = dict(loss=(per_sample * weights).sum())
        if self.meta_loss_weight > 0 and rw.meta_feats is not None:
            meta_score = self.classify(rw.meta_feats.to(cls_score))
            losses['loss_meta'] = self.meta_loss_weight * F.cross_entropy(
                meta_score, rw.meta_labels.to(cls_score.device))
        losses['ot_dist'] = stats['ot_dist']
        if 'ot_iters' in stats:
            losses['ot_iters'] = stats['ot_iters']
        losses['ot_w_max'] = (weights.detach() * weights.numel()).max()
        return losses
