# Copyright (c) mmot contributors. All rights reserved.
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmpretrain.registry import HOOKS
from mmot.datasets.long_tail_dataset import training_labels
from mmot.models.classifiers.feature_cache import FeatureCache

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
    (seeded). Every rank caches the whole training set.

    Args:
        views (int): Augmented views V (epoch ``e`` reads view
            ``e mod V``). Defaults to 1.
        start_epoch (int): First epoch on the cache. Defaults to 0.
        seed (int): Seed of the cached augmentations. Defaults to 0.
        batch_size (int): Batch size of the filling pass. Defaults to 256.
    """

    priority = 'LOW'  # after OTReweightHook froze the backbone

    def __init__(self, views: int = 1, start_epoch: int = 0, seed: int = 0,
                 batch_size: int = 256):
        if not (isinstance(start_epoch, int) and start_epoch >= 0) or not (
                isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f'{KEY}: start_epoch must be an int >= 0 and '
                             f'batch_size an int >= 1, got {start_epoch!r}, '
                             f'{batch_size!r}')
        self.cache = FeatureCache(views, seed)
        self.start_epoch, self.batch_size = start_epoch, batch_size

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if not hasattr(model, 'fill_feature_cache'):
            raise TypeError(f"{KEY} needs model.type='OTImageClassifier', "
                            f'got {type(model).__name__}')

    def before_train_epoch(self, runner) -> None:
        if runner.epoch < self.start_epoch:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if self.cache.feats is None:
            dataset = runner.train_dataloader.dataset
            loader = Runner.build_dataloader(dict(
                dataset=dataset, batch_size=self.batch_size, num_workers=0,
                sampler=dict(type='MetaSetSampler'),  # all, in order
                collate_fn=dict(type='pseudo_collate')))
            model.fill_feature_cache(self.cache, loader,
                                     len(training_labels(dataset)[0]))
            runner.logger.info(
                f'{KEY}: cached {self.cache.views} view(s) of '
                f'{int(self.cache.filled.sum())} training images')
        self.cache.set_epoch(runner.epoch)
