# Copyright (c) mmot contributors. All rights reserved.
"""Long-tailed view of a balanced dataset, with a held-out balanced meta set."""
import copy
import hashlib
import os.path as osp
import random
import warnings
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset, Compose

from mmpretrain.registry import DATASETS


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float,
                     profile: str = 'exp') -> List[int]:
    """Per-class image counts of a long-tailed profile.

    ``exp``: n_i = n_max * IF^(-i / (K - 1)) (Cui et al. 2019; the OT
    re-weighting paper's CIFAR-LT). ``step``: the first half of the classes
    keep n_max, the second half n_max / IF (Cao et al. 2019).
    """
    if profile == 'exp':
        if num_classes == 1:
            return [int(n_max)]
        return [
            int(n_max * imbalance_factor**(-i / (num_classes - 1)))
            for i in range(num_classes)
        ]
    if profile == 'step':
        head = num_classes // 2
        return [int(n_max)] * head + [int(n_max / imbalance_factor)] * (
            num_classes - head)
    raise ValueError(f"LongTailDataset.profile must be 'exp' or 'step', "
                     f'got {profile!r}')


class MetaSubset:
    """The meta samples of a :class:`LongTailDataset`, optionally with their
    own (deterministic) pipeline. Indices refer to ``source``."""

    def __init__(self, source, indices: Sequence[int], pipeline=None):
        self.source = source
        self.indices = [int(i) for i in indices]
        self.pipeline = Compose(pipeline) if pipeline is not None else None

    def __len__(self):
        return len(self.indices)

    def get_cat_ids(self, idx: int) -> List[int]:
        return self.source.get_cat_ids(self.indices[idx])

    def __getitem__(self, idx):
        src_idx = self.indices[idx]
        if self.pipeline is None:
            return self.source[src_idx]
        return self.pipeline(copy.deepcopy(self.source.get_data_info(src_idx)))


def unwrap_dataset(dataset):
    """Walk ``.dataset`` of wrappers (ClassBalancedDataset, ...) down to a
    :class:`LongTailDataset`, or to the innermost dataset."""
    while not hasattr(dataset, 'get_meta_dataset') and hasattr(
            dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


def training_labels(dataset):
    """``(labels, counts)`` of a training dataset: each dataset index's
    class (for a :class:`LongTailDataset` the indices of its source, -1 for
    the held-out and cut ones) and the class counts of the training set.

    The one place the training class counts are read from a dataset (by
    :class:`ClassCountsHook`, :class:`DRWHook`, :class:`OTReweightHook`):
    ``LongTailDataset.class_counts`` through dataset wrappers, else the
    histogram of the labels (``get_gt_labels()`` / ``get_cat_ids()``), as
    long as the ``classes`` of the metainfo if it has them. Raises a
    TypeError for a dataset with neither."""
    lt = unwrap_dataset(dataset)
    if hasattr(lt, 'get_meta_dataset'):
        if hasattr(lt, 'full_init'):  # a lazy_init LongTailDataset
            lt.full_init()
        labels = torch.full((lt.num_source_samples, ), -1)
        labels[torch.as_tensor(lt.train_indices)] = torch.as_tensor(
            lt.source_labels[lt.train_indices])
        return labels, torch.as_tensor(lt.class_counts)
    if not (hasattr(dataset, 'get_gt_labels')
            or hasattr(dataset, 'get_cat_ids')):
        raise TypeError(
            f'the training dataset ({type(dataset).__name__}) is not a '
            'LongTailDataset and has neither get_gt_labels() nor '
            'get_cat_ids(), so its class counts are unknown')
    from .samplers.meta_set_sampler import dataset_labels
    labels = torch.as_tensor(dataset_labels(dataset))
    metainfo = getattr(dataset, 'metainfo', None)
    classes = metainfo.get('classes') if isinstance(metainfo, dict) else None
    return labels, torch.bincount(labels, minlength=len(classes or ()))


def build_training_dataset(dataset_cfg, scope: str = 'mmpretrain'):
    """Build a training dataset from its config (``train_dataloader.dataset``
    of a config) under the registry ``scope``: what the tools and
    :class:`ClassCountsHook` pass to :func:`training_labels` when no
    training loop has built it."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        return DATASETS.build(copy.deepcopy(dataset_cfg))


def meta_dataset(dataset, dynamic: bool = False, pipeline: str = 'meta',
                 key: str = 'meta_loader'):
    """The dataset the meta set is drawn from: the held-out meta set of the
    :class:`LongTailDataset` in ``dataset``, or with ``dynamic`` its whole
    training set; read with the deterministic ``meta_pipeline``
    (``pipeline='meta'``) or the training pipeline (``'train'``)."""
    lt = unwrap_dataset(dataset)
    if hasattr(lt, 'get_meta_dataset'):
        meta = MetaSubset(lt.dataset, lt.train_indices, lt.meta_pipeline) \
            if dynamic else lt.get_meta_dataset()
    elif dynamic:
        meta = MetaSubset(dataset, range(len(dataset)), None)
    else:
        raise ValueError(
            f'the training dataset ({type(dataset).__name__}) has no held-out'
            " meta set. Wrap it: train_dataloader.dataset=dict(type="
            "'LongTailDataset', dataset=...), or set "
            f'{key}.sampler.dynamic=True')
    return MetaSubset(meta.source, meta.indices, None) \
        if pipeline == 'train' else meta


@DATASETS.register_module()
class LongTailDataset:
    """A long-tailed training set with a balanced meta set held out of it.

    Follows the OT re-weighting authors' recipe (inherited from MetaSAug):
    first ``meta_per_class`` images of every class are drawn (seeded) as the
    balanced meta set and removed; then the remaining images are cut to the
    long-tailed ``profile`` with ``imbalance_factor`` (IF), class 0 being the
    head. With ``imbalance_factor=None`` no cut is made (for datasets that are
    long-tailed already, e.g. ImageNet-LT); with ``meta_dataset`` the meta set
    is drawn from that dataset instead (e.g. the balanced ImageNet-LT val
    list) and nothing is removed from the training set.

    Indexing: item ``i`` is ``dataset[train_indices[i]]``, so each sample's
    ``sample_idx`` is its index in the wrapped dataset; per-sample state
    (the OT weight vector) is indexed by it and has ``len(dataset)`` entries.

    Args:
        dataset (dict | BaseDataset): The wrapped (usually balanced) dataset.
        imbalance_factor (float, optional): n_max / n_min, >= 1. None keeps
            every remaining image. Defaults to None.
        profile (str): ``'exp'`` or ``'step'``. Defaults to ``'exp'``.
        meta_per_class (int): Images per class held out as the meta set.
            0 disables the meta set. Defaults to 10.
        meta_dataset (dict | BaseDataset, optional): Draw the meta set from
            this dataset instead of the training set. Defaults to None.
        meta_pipeline (list[dict], optional): Pipeline used when the meta
            images are read (by :class:`OTReweightHook`); use a deterministic
            one (the test pipeline). None uses the source dataset's pipeline.
        seed (int): Seed of the meta draw and the long-tail cut.
            Defaults to 0.
        lazy_init (bool): Defer the split until first use. Defaults to False.
        split (str): How the meta set and the long-tailed subset are drawn.
            ``'mmot'``: one ``numpy.random.default_rng(seed)``, a permutation
            per class; the meta set is its first ``meta_per_class`` images,
            the cut keeps the next ``n_k``. ``'authors'``: as the authors'
            code (data_utils.py / OT_train.py): ``RandomState(seed)`` (their
            ``np.random.seed(6)``) shuffles each class's list of positions in
            dataset order, class by class, and the meta set is the first
            ``meta_per_class``; then ``random.Random(cut_seed)`` (their
            ``random.seed(42)``) shuffles each class's remaining positions
            and the first ``n_k`` are kept. Needs no ``meta_dataset``.
            Defaults to ``'mmot'``.
        cut_seed (int): Seed of the long-tail cut of ``split='authors'``.
            Defaults to 42.
        allow_meta_overlap (bool): Allow a ``meta_dataset`` that is the
            training dataset (the same object, or the same class reading the
            same annotation file or split), which is an error by default: the
            meta set must be held out of training. Meta images that are also
            training images (same ``img_path`` or identical in-memory image)
            give a warning unless this is set. Set it to draw the meta set
            from the training images on purpose (iNaturalist 2018, paper
            appendix B.1). Defaults to False.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 imbalance_factor: Optional[float] = None,
                 profile: str = 'exp',
                 meta_per_class: int = 10,
                 meta_dataset: Union[dict, BaseDataset, None] = None,
                 meta_pipeline: Optional[list] = None,
                 seed: int = 0,
                 lazy_init: bool = False,
                 split: str = 'mmot',
                 cut_seed: int = 42,
                 allow_meta_overlap: bool = False):
        if split not in ('mmot', 'authors'):
            raise ValueError("LongTailDataset.split must be 'mmot' or "
                             f"'authors', got {split!r}")
        if split == 'authors' and meta_dataset is not None:
            raise ValueError("LongTailDataset.split='authors' draws the meta "
                             'set from the training set: remove meta_dataset')
        self.split = split
        self.cut_seed = cut_seed
        self.dataset = DATASETS.build(dataset) if isinstance(dataset,
                                                             dict) else dataset
        if meta_dataset is not None and isinstance(meta_dataset, dict):
            meta_dataset = DATASETS.build(meta_dataset)
        self.meta_source = meta_dataset
        if imbalance_factor is not None and not imbalance_factor >= 1:
            raise ValueError('LongTailDataset.imbalance_factor must be >= 1 '
                             f'(n_max / n_min), got {imbalance_factor}')
        if profile not in ('exp', 'step'):
            raise ValueError("LongTailDataset.profile must be 'exp' or "
                             f"'step', got {profile!r}")
        if not (isinstance(meta_per_class, int) and meta_per_class >= 0):
            raise ValueError('LongTailDataset.meta_per_class must be an int '
                             f'>= 0, got {meta_per_class!r}')
        self.imbalance_factor = imbalance_factor
        self.profile = profile
        self.meta_per_class = meta_per_class
        self.meta_pipeline = meta_pipeline
        self.seed = seed
        self.allow_meta_overlap = allow_meta_overlap
        self._metainfo = copy.deepcopy(self.dataset.metainfo)
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    @staticmethod
    def _labels_of(dataset) -> np.ndarray:
        if hasattr(dataset, 'get_gt_labels'):
            return np.asarray(dataset.get_gt_labels(), dtype=np.int64)
        return np.asarray(
            [dataset.get_cat_ids(i)[0] for i in range(len(dataset))],
            dtype=np.int64)

    @staticmethod
    def _sample_key(dataset, idx: int):
        """What identifies an image: its path, or the bytes of an in-memory
        image. None if neither is known."""
        info = dataset.get_data_info(int(idx))
        path = info.get('img_path')
        if isinstance(path, str):
            return osp.normpath(osp.abspath(path))
        img = info.get('img')
        if isinstance(img, np.ndarray):
            img = np.ascontiguousarray(img)
            return 'image ' + hashlib.sha1(img.tobytes()).hexdigest() + \
                str(img.shape)
        return None

    @staticmethod
    def _same_source(a, b) -> Optional[str]:
        """How ``a`` and ``b`` are the same dataset (same object, or same
        class reading the same annotation file / split), else None."""
        if a is b:
            return 'the same dataset object'
        if type(a) is not type(b):
            return None
        ann_a, ann_b = getattr(a, 'ann_file', ''), getattr(b, 'ann_file', '')
        if ann_a or ann_b:
            if not (ann_a and ann_b and osp.abspath(ann_a) == osp.abspath(
                    ann_b) and getattr(a, 'data_prefix', None) == getattr(
                        b, 'data_prefix', None)):
                return None
            return f'{type(a).__name__} with ann_file={ann_a}'
        names = ('data_root', 'data_prefix', 'split', 'test_mode', 'seed',
                 'test_per_class')
        if any(getattr(a, n, None) != getattr(b, n, None) for n in names):
            return None
        split = getattr(a, 'split', None)
        return type(a).__name__ + (f' split={split!r}' if split else '')

    def _check_meta_held_out(self, meta: np.ndarray) -> None:
        """Raise if ``meta_dataset`` is the training dataset; warn if some
        of its meta images are training images."""
        same = self._same_source(self.dataset, self.meta_source)
        if same is not None:
            raise ValueError(
                f'LongTailDataset.meta_dataset is the training dataset '
                f'({same}): the meta set would be training images. Use a '
                'meta_dataset disjoint from the training set (e.g. a '
                'validation list), drop meta_dataset to hold meta_per_class '
                'images per class out of the training set, or set '
                'allow_meta_overlap=True to draw the meta set from the '
                'training images on purpose')
        if not (hasattr(self.meta_source, 'get_data_info')
                and hasattr(self.dataset, 'get_data_info')):
            return
        meta_keys = {}
        for i in meta:
            key = self._sample_key(self.meta_source, i)
            if key is None:
                return  # cannot tell
            meta_keys.setdefault(key, int(i))
        hits = []
        for j in self.train_indices:
            key = self._sample_key(self.dataset, j)
            if key in meta_keys:
                hits.append((meta_keys[key], int(j), key))
        if hits:
            i, j, key = hits[0]
            what = key if not key.startswith('image ') else 'the same image'
            warnings.warn(
                f'LongTailDataset: {len(hits)} of the {len(meta)} meta-set '
                'images drawn from meta_dataset are also training images '
                f'(e.g. meta_dataset[{i}] and dataset[{j}]: {what}); the '
                'meta set should be held out of training (set '
                'allow_meta_overlap=True if this is on purpose)')

    def full_init(self):
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        classes = self._metainfo.get('classes')
        labels = self._labels_of(self.dataset)
        num_classes = len(classes) if classes else int(labels.max()) + 1
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            bad = labels[(labels < 0) | (labels >= num_classes)][0]
            raise ValueError(
                f'LongTailDataset.dataset has a label {int(bad)} outside '
                f'[0, {num_classes}) (the dataset has {num_classes} classes)')
        if not classes and labels.size:
            absent = np.flatnonzero(np.bincount(labels, minlength=num_classes)
                                    == 0)
            if absent.size:
                raise ValueError(
                    'LongTailDataset.dataset has no "classes" in its metainfo'
                    f', so its labels define {num_classes} classes (max label'
                    f' {num_classes - 1}), but no image has label(s) '
                    f'{absent.tolist()[:10]}: a label is out of range or '
                    'classes are missing; give the classes, e.g. '
                    "dataset.metainfo=dict(classes=[...])")
        self.num_classes = num_classes
        rng = np.random.default_rng(self.seed)
        per_class = [np.flatnonzero(labels == k) for k in range(num_classes)]

        # 1. the meta set, drawn first (authors' order).
        meta, rest = [], []
        if self.meta_source is not None:
            if hasattr(self.meta_source, 'full_init'):
                self.meta_source.full_init()
            meta_labels = self._labels_of(self.meta_source)
            if meta_labels.size and (meta_labels.min() < 0
                                     or meta_labels.max() >= num_classes):
                bad = meta_labels[(meta_labels < 0)
                                  | (meta_labels >= num_classes)][0]
                raise ValueError(
                    f'LongTailDataset.meta_dataset has a label {int(bad)} '
                    f'outside [0, {num_classes}) (the training dataset has '
                    f'{num_classes} classes)')
            for k in range(num_classes):
                idx = np.flatnonzero(meta_labels == k)
                if len(idx) < self.meta_per_class:
                    raise ValueError(
                        f'LongTailDataset.meta_per_class={self.meta_per_class}'
                        f' but class {k} ({classes[k] if classes else k}) has '
                        f'only {len(idx)} images in meta_dataset')
                meta.append(rng.permutation(idx)[:self.meta_per_class])
            rest = [rng.permutation(idx) for idx in per_class]
        else:
            legacy = np.random.RandomState(self.seed)
            for k, idx in enumerate(per_class):
                if len(idx) < self.meta_per_class:
                    raise ValueError(
                        f'LongTailDataset.meta_per_class={self.meta_per_class}'
                        f' but class {k} ({classes[k] if classes else k}) has '
                        f'only {len(idx)} training images')
                if self.split == 'authors':
                    perm = list(idx)
                    legacy.shuffle(perm)
                    perm = np.asarray(perm, dtype=np.int64)
                    meta.append(perm[:self.meta_per_class])
                    # their cut shuffles positions in dataset order
                    rest.append(np.sort(perm[self.meta_per_class:]))
                else:
                    perm = rng.permutation(idx)
                    meta.append(perm[:self.meta_per_class])
                    rest.append(perm[self.meta_per_class:])
            if self.split == 'authors':
                cut_rng = random.Random(self.cut_seed)
                shuffled = []
                for r in rest:
                    r = list(r)
                    cut_rng.shuffle(r)
                    shuffled.append(np.asarray(r, dtype=np.int64))
                rest = shuffled

        # 2. the long-tail cut of what is left.
        if self.imbalance_factor is None:
            keep = [len(r) for r in rest]
        else:
            n_max = max(len(r) for r in rest)
            keep = long_tail_counts(n_max, num_classes,
                                    self.imbalance_factor, self.profile)
            keep = [min(n, len(r)) for n, r in zip(keep, rest)]
        for k, n in enumerate(keep):
            if n <= 0:
                raise ValueError(
                    f'LongTailDataset: class {k} '
                    f'({classes[k] if classes else k}) has no training image '
                    f'left after holding out meta_per_class='
                    f'{self.meta_per_class} and the long-tail cut '
                    f'(imbalance_factor={self.imbalance_factor}); lower '
                    'imbalance_factor or meta_per_class')
        train = [np.sort(r[:n]) for r, n in zip(rest, keep)]
        self.train_indices = np.sort(np.concatenate(train)).astype(np.int64)
        self.meta_indices = np.concatenate(meta).astype(np.int64)
        self.meta_labels = np.repeat(np.arange(num_classes), self.meta_per_class)
        self.class_counts = [int(n) for n in keep]
        self.source_labels = labels
        if self.meta_source is None and np.intersect1d(
                self.train_indices, self.meta_indices).size:
            raise RuntimeError('LongTailDataset: meta set overlaps training')
        if self.meta_source is not None and not self.allow_meta_overlap:
            self._check_meta_held_out(self.meta_indices)
        self._metainfo['class_counts'] = list(self.class_counts)
        self._fully_initialized = True

    # --- views used by the OT hook -------------------------------------
    @property
    def num_source_samples(self) -> int:
        """Size of the wrapped dataset (length of the OT weight vector)."""
        return len(self.dataset)

    def get_meta_dataset(self) -> MetaSubset:
        """The held-out meta samples, read with ``meta_pipeline``."""
        self.full_init()
        source = self.meta_source if self.meta_source is not None \
            else self.dataset
        return MetaSubset(source, self.meta_indices, self.meta_pipeline)

    def summary(self) -> str:
        self.full_init()
        return (f'LongTailDataset: {len(self)} training images in '
                f'{self.num_classes} classes (max {max(self.class_counts)}, '
                f'min {min(self.class_counts)}, IF='
                f'{self.imbalance_factor}, profile={self.profile}), meta set '
                f'{len(self.meta_indices)} images ({self.meta_per_class}/class'
                f', from {"meta_dataset" if self.meta_source is not None else "training set"}'
                f'), {self.num_source_samples - len(self) - (0 if self.meta_source is not None else len(self.meta_indices))} dropped by the cut')

    # --- dataset protocol -----------------------------------------------
    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        return self.dataset.get_data_info(int(self.train_indices[idx]))

    def get_cat_ids(self, idx: int) -> List[int]:
        self.full_init()
        return [int(self.source_labels[self.train_indices[idx]])]

    def get_gt_labels(self) -> np.ndarray:
        self.full_init()
        return self.source_labels[self.train_indices]

    def __getitem__(self, idx: int) -> dict:
        self.full_init()
        return self.dataset[int(self.train_indices[idx])]

    def __len__(self) -> int:
        self.full_init()
        return len(self.train_indices)

    def __repr__(self) -> str:
        return self.summary()


@DATASETS.register_module()
class LongTailMetaSet:
    """The balanced meta set a :class:`LongTailDataset` holds out, as a
    dataset of its own, read with its ``meta_pipeline``: e.g. the test set
    of ``tools/test.py --out meta.pkl``, whose predictions are the held-out
    data the inductive post-hoc corrections are estimated on
    (``PostHocMetric(fit_file='meta.pkl')``), never the test set.

    Args:
        long_tail (dict): The :class:`LongTailDataset` config (the training
            set's, so the held-out images are the ones stage 2 never trains
            on).
    """

    def __init__(self, long_tail: dict):
        lt = DATASETS.build(long_tail) if isinstance(long_tail, dict) \
            else long_tail
        if not isinstance(lt, LongTailDataset):
            raise TypeError('LongTailMetaSet.long_tail must be a '
                            f'LongTailDataset config, got {type(lt).__name__}')
        self.meta = lt.get_meta_dataset()
        if len(self.meta) == 0:
            raise ValueError('LongTailMetaSet: the LongTailDataset holds out '
                             'no meta image (meta_per_class=0)')
        self.metainfo = lt.metainfo

    def __len__(self) -> int:
        return len(self.meta)

    def get_cat_ids(self, idx: int) -> List[int]:
        return self.meta.get_cat_ids(idx)

    def __getitem__(self, idx: int) -> dict:
        return self.meta[idx]
