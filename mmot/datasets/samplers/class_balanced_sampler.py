# Copyright (c) mmot contributors. All rights reserved.
"""Class-balanced sampling (for classifier re-training, cRT)."""
import math
from typing import Iterator, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmpretrain.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Class-balanced sampler: every index is drawn by first picking a class
    uniformly at random, then an image of that class uniformly at random
    (with replacement), as in the class-balanced re-training (cRT) stage of
    Kang et al., "Decoupling Representation and Classifier for Long-Tailed
    Recognition", ICLR 2020.

    An epoch has ``len(dataset)`` draws (rounded up to a multiple of the world
    size) split across ranks: all ranks generate the same global sequence from
    ``seed + epoch`` and rank ``r`` takes positions ``r, r + world_size, ...``,
    like mmengine's ``DefaultSampler``. Call :meth:`set_epoch` (the runner
    does) for a new sequence every epoch.

    Labels are read once at construction with ``dataset.get_gt_labels()`` if
    the dataset has it, else ``dataset.get_cat_ids(i)`` (single-label
    datasets only). Classes with no image are never drawn.

    Args:
        dataset (Sized): The dataset.
        seed (int, optional): Random seed, identical on all ranks. None
            draws a synchronised random seed. Defaults to None.
        num_samples (int, optional): Global number of draws per epoch.
            Defaults to ``len(dataset)``.
    """

    def __init__(self,
                 dataset: Sized,
                 seed: Optional[int] = None,
                 num_samples: Optional[int] = None) -> None:
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        if seed is None:
            seed = sync_random_seed()
        self.seed = seed
        self.epoch = 0
        if num_samples is None:
            num_samples = len(dataset)
        if not isinstance(num_samples, int) or num_samples <= 0:
            raise ValueError('ClassBalancedSampler: `num_samples` must be a '
                             f'positive int, got {num_samples!r}')
        self.num_samples = math.ceil(num_samples / world_size)
        self.total_size = self.num_samples * world_size

        labels = self._read_labels(dataset)
        if labels.numel() == 0:
            raise ValueError('ClassBalancedSampler: the dataset is empty')
        order = torch.argsort(labels, stable=True)
        classes, counts = torch.unique(labels[order], return_counts=True)
        self.classes = classes
        self.class_sizes = counts
        self.class_offsets = torch.cumsum(counts, 0) - counts
        self.sorted_indices = order

    @staticmethod
    def _read_labels(dataset) -> torch.Tensor:
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        if hasattr(dataset, 'get_gt_labels'):
            labels = torch.as_tensor(dataset.get_gt_labels()).long().view(-1)
            if labels.numel() == len(dataset):
                return labels
        if not hasattr(dataset, 'get_cat_ids'):
            raise TypeError(
                'ClassBalancedSampler needs per-sample labels: the dataset '
                f'({type(dataset).__name__}) has neither get_gt_labels() nor '
                'get_cat_ids(idx)')
        labels = []
        for i in range(len(dataset)):
            cat = dataset.get_cat_ids(i)
            if isinstance(cat, torch.Tensor):
                cat = cat.tolist()
            if isinstance(cat, int):
                cat = [cat]
            if len(cat) != 1:
                raise ValueError(
                    'ClassBalancedSampler supports single-label datasets '
                    f'only; get_cat_ids({i}) returned {list(cat)!r}')
            labels.append(int(cat[0]))
        return torch.tensor(labels, dtype=torch.long)

    def _global_indices(self) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        n = self.total_size
        cls = torch.randint(len(self.classes), (n, ), generator=g)
        within = (torch.rand(n, generator=g, dtype=torch.float64) *
                  self.class_sizes[cls]).long()
        within = torch.minimum(within, self.class_sizes[cls] - 1)
        return self.sorted_indices[self.class_offsets[cls] + within]

    def __iter__(self) -> Iterator[int]:
        """Iterate this rank's share of the epoch's draws."""
        indices = self._global_indices()
        return iter(indices[self.rank:self.total_size:self.world_size]
                    .tolist())

    def __len__(self) -> int:
        """The number of samples in this rank."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which seeds the draws with ``seed + epoch``.

        Args:
            epoch (int): Epoch number.
        """
        self.epoch = epoch
