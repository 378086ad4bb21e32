# Copyright (c) mmot contributors. All rights reserved.
import mmcv

from mmpretrain.datasets.transforms import RandomCrop
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PadModeRandomCrop(RandomCrop):
    """mmpretrain's ``RandomCrop`` with ``padding_mode`` applied to
    ``padding`` too.

    mmpretrain 1.2's ``RandomCrop`` pads ``padding`` with ``pad_val``
    (zeros) whatever ``padding_mode`` says, and uses the mode only for
    ``pad_if_needed``; so ``padding=4, padding_mode='reflect'`` (torchvision's
    and the OT authors' CIFAR augmentation) silently gives zero borders. This
    transform pads ``padding`` with ``padding_mode`` first, then crops as
    ``RandomCrop`` does (the same random draws).

    Args: as ``RandomCrop``.
    """

    def transform(self, results: dict) -> dict:
        if self.padding is None:
            return super().transform(results)
        results['img'] = mmcv.impad(results['img'], padding=self.padding,
                                    pad_val=self.pad_val,
                                    padding_mode=self.padding_mode)
        padding, self.padding = self.padding, None
        try:
            return super().transform(results)
        finally:
            self.padding = padding
