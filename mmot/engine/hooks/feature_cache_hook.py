# Copyright (c) mmot contributors. All rights reserved.
import hashlib
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import Runner

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
    """

    priority = 'LOW'  # after OTReweightHook froze the backbone

    def __init__(self, views: int = 1, start_epoch: int = 0, seed: int = 0,
                 batch_size: int = 256, file: Optional[str] = None):
        if not (isinstance(start_epoch, int) and start_epoch >= 0) or not (
                isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f'{KEY}: start_epoch must be an int >= 0 and '
                             f'batch_size an int >= 1, got {start_epoch!r}, '
                             f'{batch_size!r}')
        if file is not None and not (isinstance(file, str) and file):
            raise ValueError(f'{KEY}: file must be a path or None, got '
                             f'{file!r}')
        self.cache = FeatureCache(views, seed)
        self.start_epoch, self.batch_size = start_epoch, batch_size
        self.file = file

    def before_run(self, runner) -> None:
        model = unwrap_model(runner.model)
        if not isinstance(model, OTImageClassifier):
            raise TypeError(f"{KEY} needs model.type='OTImageClassifier', "
                            f'got {type(model).__name__}')

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
