# Copyright (c) mmot contributors. All rights reserved.
"""The balanced meta set Q is built from (paper Sec. 4)."""
from typing import Iterator, Optional, Sized

import numpy as np
import torch
from torch.utils.data import Sampler

from mmpretrain.registry import DATA_SAMPLERS


def dataset_labels(dataset) -> np.ndarray:
    """Each index's class: ``get_gt_labels()`` if the dataset has it, else
    ``get_cat_ids(i)[0]`` (single-label)."""
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels(), dtype=np.int64)
    return np.asarray([dataset.get_cat_ids(i)[0] for i in range(len(dataset))],
                      dtype=np.int64)


@DATA_SAMPLERS.register_module()
class MetaSetSampler(Sampler):
    """Yields the indices of the balanced meta set, class by class.

    - ``per_class=None``: every index of the dataset in order (the held-out
      meta set of :class:`LongTailDataset`, already balanced: 10 images per
      class in the paper).
    - ``per_class=n``: ``n`` indices per class drawn without replacement,
      seeded; with ``dynamic=True`` re-drawn every epoch (:meth:`set_epoch`;
      appendix E's dynamic meta set drawn from the training set), else the
      same draw every time.

    Every rank yields the same indices (the meta features are computed on
    each rank and then taken from rank 0), so it is not split across ranks.
    The draw of epoch ``e`` for class ``k``: ``randperm`` of the class's
    indices (in dataset order) from a generator seeded ``seed * 100003 + e``
    (``e = 0`` without ``dynamic``), first ``n`` kept.

    Args:
        dataset (Sized): The meta dataset, or the training set to draw from.
        per_class (int, optional): Indices per class. Defaults to None (all).
        dynamic (bool): Re-draw every epoch. Defaults to False.
        seed (int, optional): Seed of the draw (the Runner passes its seed
            when the config does not set one; None: 0). Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 per_class: Optional[int] = None,
                 dynamic: bool = False,
                 seed: Optional[int] = None):
        key = 'MetaSetSampler'
        if per_class is not None and not (isinstance(per_class, int)
                                          and per_class >= 1):
            raise ValueError(f'{key}.per_class must be an int >= 1 or None, '
                             f'got {per_class!r}')
        if dynamic and per_class is None:
            raise ValueError(f'{key}.dynamic=True needs per_class (how many '
                             'images per class to re-draw each epoch)')
        self.dataset = dataset
        self.per_class = per_class
        self.dynamic = dynamic
        self.seed = 0 if seed is None else int(seed)
        self.epoch = 0
        self.labels = torch.as_tensor(dataset_labels(dataset))
        if per_class is not None:
            counts = torch.bincount(self.labels[self.labels >= 0])
            small = (counts < per_class).nonzero().flatten()
            if len(small):
                raise ValueError(
                    f'{key}.per_class={per_class} but class {int(small[0])} '
                    f'has only {int(counts[small[0]])} images')
        self.num_classes = int(self.labels.max()) + 1 if len(self.labels) \
            else 0

    def indices(self) -> torch.Tensor:
        if self.per_class is None:
            return torch.arange(len(self.dataset))
        epoch = self.epoch if self.dynamic else 0
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        picks = []
        for k in range(self.num_classes):
            idx = (self.labels == k).nonzero().flatten()
            picks.append(idx[torch.randperm(len(idx),
                                            generator=g)[:self.per_class]])
        return torch.cat(picks)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        if self.per_class is None:
            return len(self.dataset)
        return self.per_class * self.num_classes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
