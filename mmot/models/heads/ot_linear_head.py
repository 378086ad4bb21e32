# Copyright (c) mmot contributors. All rights reserved.
from typing import Tuple

import torch
import torch.nn.functional as F

from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class OTLinearClsHead(LinearClsHead):
    """``LinearClsHead`` with an optional cosine classifier.

    OT re-weighting does not need this head any more: it works with every
    mmpretrain head through :class:`OTImageClassifier`. This class is kept
    for its one extra, the cosine classifier of LDAM's ``NormedLinear``
    (``normalized=True``: features and class weights L2-normalised, no
    bias; use it with ``LDAMLoss``); with ``normalized=False`` it is
    ``LinearClsHead``.

    Args:
        normalized (bool): Cosine classifier. Defaults to False.
        **kwargs: Arguments of ``LinearClsHead``.
    """

    def __init__(self, *args, normalized: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalized = normalized
        if normalized:
            self.fc.bias = None

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        pre_logits = self.pre_logits(feats)
        if self.normalized:
            return F.normalize(pre_logits, dim=1) @ F.normalize(
                self.fc.weight, dim=1).t()
        return self.fc(pre_logits)
