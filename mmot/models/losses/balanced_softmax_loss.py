# Copyright (c) mmot contributors. All rights reserved.
"""Balanced Softmax loss (Ren et al., NeurIPS 2020, "BALMS")."""
from typing import Optional, Sequence

from mmpretrain.registry import MODELS
from .logit_adjust_loss import LogitAdjustLoss


@MODELS.register_module()
class BalancedSoftmaxLoss(LogitAdjustLoss):
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
        class_counts (list[int], optional): Number of training images of
            every class (length K, all > 0). None: set later with
            :meth:`set_class_counts`, which :class:`ClassCountsHook` (in
            mmot's ``default_runtime.py``) calls with the training dataset's
            counts before the run. Defaults to None.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
    """

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean'):
        # CE(z + log n) == CE(z + log(n / sum n)): the logit adjustment with
        # tau = 1 (the constant log sum n cancels in the softmax).
        super().__init__(
            class_counts, tau=1.0, loss_weight=loss_weight,
            reduction=reduction, owner='BalancedSoftmaxLoss')
