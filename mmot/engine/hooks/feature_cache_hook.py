# Copyright (c) mmot contributors. All rights reserved.
import hashlib
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop, Runner
from torch.utils.data import BatchSampler, DataLoader, Dataset

from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import HOOKS
from mmot.datasets.long_tail_dataset import training_labels
from mmot.models.classifiers.feature_cache import FeatureCache
from mmot.models.classifiers.ot_image_classifier import OTImageClassifier
from mmot.utils import unwrap_model

KEY = 'FeatureCacheHook'


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """A decoupled stage 2 on cached features: from ``start_epoch`` on, the
    frozen backbone's outputs of ``views`` augmented views of the training
    set are computed once (:class:`FeatureCache`) and the head trains on
    them, skipping the backbone's forward pass.

    Needs ``model.type='OTImageClassifier'`` (with or without
    :class:`OTReweightHook`) whose backbone and neck are frozen in eval mode
    from ``start_epoch`` on (``freeze_backbone=True`` of the OT hook, or the
    backbone's ``frozen_stages``); it refuses to fill the cache otherwise.
    The cache is not checkpointed: a resumed run refills the same views
    (seeded), or reads ``file``. Every rank caches the whole training set.

    While the cache is used, the training loader (same sampler, batches and
    collate function) reads each example's labels and meta data without
    its image: the last transform of the training pipeline (``PackInputs``)
    packs its data info, with a 1x1 placeholder image (the head trains on
    the cached features, so decoding and augmenting the images would be
    thrown away: half of a cached step's time on CIFAR). The training is
    the same (tested); ``load_images=True`` keeps the full pipeline. An
    iteration-based loop, or a pipeline that does not end in
    ``PackInputs``, keeps it too. Batch augmentations of the data
    preprocessor (Mixup, CutMix) are refused: they would mix the labels of
    images whose cached features are not mixed.

    Args:
        views (int): Augmented views V (epoch ``e`` reads view
            ``e mod V``). Defaults to 1.
        start_epoch (int): First epoch on the cache. Defaults to 0.
        seed (int): Seed of the cached augmentations. Defaults to 0.
        batch_size (int): Batch size of the filling pass. Defaults to 256.
        file (str, optional): Keep the cache in this file: a run reads it
            instead of filling when it was computed from the same frozen
            backbone, neck and data preprocessor (every parameter and
            buffer), training pipeline, labels, ``views`` and ``seed``
            (a SHA-256 fingerprint), else fills and writes it. Runs of a
            stage-2 sweep from one checkpoint then fill it once. Defaults
            to None (in memory only).
        load_images (bool): Keep loading and transforming the training
            images while the cache is used (slower; the same training).
            Defaults to False.
    """

    priority = 'LOW'  # after OTReweightHook froze the backbone

    def __init__(self, views: int = 1, start_epoch: int = 0, seed: int = 0,
                 batch_size: int = 256, file: Optional[str] = None,
                 load_images: bool = False):
        if not (isinstance(start_epoch, int) and start_epoch >= 0) or not (
                isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f'{KEY}: start_epoch must be an int >= 0 and '
                             f'batch_size an int >= 1, got {start_epoch!r}, '
                             f'{batch_size!r}')
        if file is not None and not (isinstance(file, str) and file):
            raise ValueError(f'{KEY}: file must be a path or None, got '
                             f'{file!r}')
        if not isinstance(load_images, bool):
            raise TypeError(f'{KEY}: load_images must be a bool, got '
                            f'{load_images!r}')
        self.cache = FeatureCache(views, seed)
        self.start_epoch, self.batch_size = start_epoch, batch_size
        self.file, self.load_images = file, load_images

    def before_run(self, runner) -> None:
        model = unwrap_model(runner.model)
        if not isinstance(model, OTImageClassifier):
            raise TypeError(f"{KEY} needs model.type='OTImageClassifier', "
                            f'got {type(model).__name__}')
        if getattr(model.data_preprocessor, 'batch_augments', None):
            raise ValueError(
                f'{KEY}: model.data_preprocessor.batch_augments (Mixup, '
                'CutMix) would mix the labels of images whose cached '
                'features are not mixed: remove them for a cached stage 2')

    def before_train_epoch(self, runner) -> None:
        if runner.epoch < self.start_epoch:
            return
        model = unwrap_model(runner.model)
        if self.cache.feats is None:
            dataset = runner.train_dataloader.dataset
            loader = Runner.build_dataloader(dict(
                dataset=dataset, batch_size=self.batch_size, num_workers=0,
                sampler=dict(type='MetaSetSampler'),  # all, in order
                collate_fn=dict(type='pseudo_collate')))
            labels = training_labels(dataset)[0]
            key = read = None
            if self.file is not None:
                frozen = [model.data_preprocessor] + model.feature_modules()
                key = self.cache.fingerprint(frozen, len(labels),
                                             _data_key(dataset))
                read = self.cache.load(self.file, key)
            model.fill_feature_cache(self.cache, loader, len(labels))
            if self.file is not None and not read:
                self.cache.save(self.file, key)
            runner.logger.info(
                f'{KEY}: {"read" if read else "cached"} {self.cache.views} '
                f'view(s) of {int(self.cache.filled.sum())} training images'
                + (f' ({self.file})' if self.file else ''))
        self.cache.set_epoch(runner.epoch)
        if not self.load_images and not isinstance(
                runner.train_loop.dataloader.dataset, WithoutImages):
            _skip_images(runner, model)


def _skip_images(runner, model) -> None:
    """Give the epoch-based training loop a loader of the same batches
    without the images (see :class:`FeatureCacheHook`)."""
    old = runner.train_loop.dataloader
    view = without_images(old.dataset, model.data_preprocessor)
    if view is None or not isinstance(runner.train_loop, EpochBasedTrainLoop):
        runner.logger.info(f'{KEY}: the training loader keeps loading the '
                           'images (an iteration-based loop, or a pipeline '
                           'not ending in PackInputs)')
        return
    batches = old.batch_sampler
    if type(batches) is BatchSampler:  # the sampler keeps its set_epoch
        batches = dict(batch_size=batches.batch_size,
                       sampler=batches.sampler, drop_last=batches.drop_last)
    else:
        batches = dict(batch_sampler=batches)
    runner.train_loop.dataloader = DataLoader(
        view, num_workers=0, collate_fn=old.collate_fn,
        pin_memory=old.pin_memory, **batches)
    runner.logger.info(f'{KEY}: the training loader skips the images while '
                       'the cache is used')


def without_images(dataset, data_preprocessor) -> Optional['WithoutImages']:
    """``dataset`` read without its images (:class:`WithoutImages`), packed
    by the last transform of its (or a wrapped dataset's) pipeline, with as
    many placeholder channels as ``data_preprocessor`` normalises; None if
    that transform is not ``PackInputs`` or the dataset has no
    ``get_data_info``."""
    pack, d = None, dataset
    while d is not None and pack is None:
        transforms = getattr(getattr(d, 'pipeline', None), 'transforms', None)
        if transforms:
            pack = transforms[-1] if isinstance(transforms[-1],
                                                PackInputs) else False
        d = getattr(d, 'dataset', None)
    if not pack or not hasattr(dataset, 'get_data_info'):
        return None
    mean = getattr(data_preprocessor, 'mean', None)
    channels = mean.shape[0] if isinstance(mean, torch.Tensor) else 3
    return WithoutImages(dataset, pack, channels)


class WithoutImages(Dataset):
    """A training set's examples as the cached stage 2 reads them: the
    data info packed by ``pack`` (the pipeline's PackInputs) and a 1x1
    placeholder image of ``channels`` channels (the data preprocessor still
    normalises its batch; the model reads the cache)."""

    def __init__(self, dataset, pack, channels: int):
        self.dataset, self.pack, self.channels = dataset, pack, channels

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        info = self.dataset.get_data_info(idx)
        info.pop(self.pack.input_key, None)  # a loaded image (CIFAR)
        packed = self.pack(info)
        packed['inputs'] = torch.zeros(self.channels, 1, 1, dtype=torch.uint8)
        return packed

    def __getattr__(self, name):  # metainfo, get_cat_ids, ... of the set
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _data_key(dataset) -> str:
    """What the cached views depend on in the data: every training
    example's file and label (``get_data_info``) and the pipelines of the
    dataset and the datasets it wraps."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        h.update(f'{info.get("img_path")} {info.get("gt_label")};'.encode())
    pipes, d = [], dataset
    while d is not None:
        pipes.append(repr(getattr(d, 'pipeline', None)))
        d = getattr(d, 'dataset', None)
    return h.hexdigest() + ' ' + ' '.join(pipes)
