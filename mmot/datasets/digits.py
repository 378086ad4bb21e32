# Copyright (c) mmot contributors. All rights reserved.
"""scikit-learn's 8x8 handwritten digits as an mmpretrain dataset (offline)."""
from typing import List

import numpy as np

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class DigitsDataset(BaseDataset):
    """The UCI 8x8 digits (1797 images, 10 classes) shipped with
    scikit-learn, so demos and tests run without a download.

    A seeded, class-balanced split: ``test_per_class`` images of each class
    form the test split, the rest the train split. Images are 8x8 uint8
    (the 0-16 grey levels scaled by 16), one channel.

    Args:
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        test_per_class (int): Test images per class. Defaults to 60.
        seed (int): Seed of the split. Defaults to 0.
        pipeline (list): Transforms. Defaults to ``[PackInputs]``.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """

    METAINFO = {'classes': tuple(str(i) for i in range(10))}

    def __init__(self,
                 split: str = 'train',
                 test_per_class: int = 60,
                 seed: int = 0,
                 pipeline=(dict(type='PackInputs'), ),
                 **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(
                f"DigitsDataset.split must be 'train' or 'test', got {split!r}")
        self.split = split
        self.test_per_class = test_per_class
        self.seed = seed
        super().__init__(ann_file='', pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        rng = np.random.default_rng(self.seed)
        chosen = []
        for k in range(10):
            idx = rng.permutation(np.flatnonzero(labels == k))
            if len(idx) <= self.test_per_class:
                raise ValueError(
                    f'DigitsDataset.test_per_class={self.test_per_class} '
                    f'leaves no training image of class {k} ({len(idx)} '
                    'images)')
            chosen.append(idx[:self.test_per_class] if self.split == 'test'
                          else idx[self.test_per_class:])
        order = np.sort(np.concatenate(chosen))
        return [
            dict(img=images[i], gt_label=int(labels[i]),
                 img_shape=(8, 8), ori_shape=(8, 8)) for i in order
        ]
