# Copyright (c) mmot contributors. All rights reserved.
"""Orchestration of OT re-weighting's stage 2 in the mmengine Runner."""
import copy
import json
import os.path as osp
import random
import warnings

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmpretrain.registry import HOOKS, PARAM_SCHEDULERS
from mmot.datasets.long_tail_dataset import (LongTailDataset, meta_dataset,
                                             training_labels, unwrap_dataset)
from mmot.engine.optim_wrappers import SkipNonFiniteOptimWrapper
from mmot.engine.schedulers.two_stage_lr import TwoStageLR, check_stage2
from mmot.models.classifiers.ot_image_classifier import OTImageClassifier
from mmot.utils import unwrap_model

KEY = 'OTReweightHook'


@HOOKS.register_module()
class OTReweightHook(Hook):
    """Switches OT re-weighting's stage 2 on at t1 and keeps Q fresh.

    It hands the training set and the meta loader to the model (which sizes
    its re-weighting state), appends a :class:`TwoStageLR` for
    ``stage2_lr``; at t1 (from the Runner's progress: resume-safe) it starts
    stage 2, refreshes Q, logs class-mean weights and checkpoints the global
    RNG (resume replays the augmentation draws). docs/how-it-works.md.

    Args:
        start_epoch (int, optional): t1 (0-based); or ``start_iter``.
        stage2_lr (float, optional): The paper's alpha from t1 on.
        stage2_sgd (dict, optional): Settings of a fresh stage-2 SGD
            (:class:`TwoStageLR`; the authors': momentum 0.9, Nesterov).
        freeze_backbone (bool), freeze_mode (str): Train the head only in
            stage 2; see :meth:`OTImageClassifier.start_stage2`.
        meta_loader (dict): ``Runner.build_dataloader`` arguments, plus
            ``pipeline``: ``'meta'`` (the dataset's ``meta_pipeline``) or
            ``'train'`` (training augmentation, the authors' code);
            ``sampler.dynamic=True`` re-draws it from the training set.
        meta_refresh_interval (int): Epochs between meta refreshes.
        save_class_weights (bool): Write ``ot_class_weights.json``.
    """

    priority = 'HIGH'  # sizes the OT state before EMAHook copies the model

    def __init__(self, start_epoch=None, start_iter=None, stage2_lr=None,
                 stage2_sgd=None, freeze_backbone=False, freeze_mode='eval',
                 meta_loader=dict(), meta_refresh_interval=1,
                 save_class_weights=True):
        t1 = start_epoch if start_iter is None else start_iter
        if (start_epoch is None) == (start_iter is None) or not (
                isinstance(t1, int) and t1 >= 0):
            raise ValueError(f'{KEY}: give exactly one of start_epoch and '
                             f'start_iter, an int >= 0 (got {start_epoch}, '
                             f'{start_iter})')
        if freeze_mode not in ('eval', 'train'):
            raise ValueError(f"{KEY}.freeze_mode must be 'eval' or 'train', "
                             f'got {freeze_mode!r}')
        elif freeze_mode != 'eval' and not freeze_backbone:
            raise ValueError(f'{KEY}.freeze_mode={freeze_mode!r} has no '
                             'effect without freeze_backbone=True')
        check_stage2(stage2_lr, stage2_sgd, KEY)
        loader = {**dict(batch_size=256, num_workers=0, pipeline='meta',
                         sampler=dict(type='MetaSetSampler')),
                  **copy.deepcopy(meta_loader)}
        if loader['pipeline'] not in ('meta', 'train') or not all(
                isinstance(v, int) and v >= 1
                for v in (loader['batch_size'], meta_refresh_interval)):
            raise ValueError(f"{KEY}: meta_loader.pipeline must be 'meta' or "
                             "'train', meta_loader.batch_size and "
                             'meta_refresh_interval ints >= 1, got '
                             f'{meta_loader!r}, {meta_refresh_interval!r}')
        self.by_epoch, self.t1, self.freeze = start_iter is None, t1, (
            freeze_backbone, freeze_mode)
        self.stage2_lr, self.stage2_sgd = stage2_lr, stage2_sgd
        self.loader_cfg, self.interval = loader, meta_refresh_interval
        self.save_class_weights = save_class_weights
        self.active, self.log, self._rng = False, [], None

    def before_run(self, runner) -> None:
        if isinstance(getattr(runner, '_train_loop', None), (dict, type(None))):
            return  # test/val only
        model, loop = unwrap_model(runner.model), runner.train_loop
        if not isinstance(model, OTImageClassifier):
            raise TypeError(f"{KEY} needs model.type='OTImageClassifier' (it "
                            f'keeps your backbone, neck and head), got '
                            f'{type(model).__name__}')
        end = loop.max_epochs if self.by_epoch else loop.max_iters
        if self.t1 >= end:
            key = 'start_epoch' if self.by_epoch else 'start_iter'
            raise ValueError(f'{KEY}.{key}={self.t1} must be < the training '
                             f'length {end}: stage 2 would never run')
        if self.freeze[0] and is_model_wrapper(runner.model) and \
                not getattr(runner.model, 'find_unused_parameters', True):
            raise ValueError(f'{KEY}.freeze_backbone=True under DDP needs '
                             'find_unused_parameters=True in the config')
        if runner.train_dataloader.batch_size == 1:  # a warning, no error
            warnings.warn(f'{KEY}: train_dataloader.batch_size=1: a batch of '
                          'one sample always has OT weight 1')
        if not (isinstance(runner.optim_wrapper, SkipNonFiniteOptimWrapper)
                and runner.optim_wrapper.skip_non_finite):
            runner.logger.warning(f'{KEY}: non-finite losses are not skipped'
                                  ': use SkipNonFiniteOptimWrapper')
        self._setup_data(runner, model)
        self._setup_schedule(runner)

    def _setup_data(self, runner, model) -> None:
        dataset = runner.train_dataloader.dataset
        cfg = copy.deepcopy(self.loader_cfg)
        cfg['dataset'] = meta_dataset(dataset, cfg['sampler'].get('dynamic'),
                                      cfg.pop('pipeline'), f'{KEY}.meta_loader')
        labels, counts = training_labels(dataset)
        classes = dataset.metainfo.get('classes')
        self.counts = counts.tolist()
        if isinstance(unwrap_dataset(dataset), LongTailDataset):
            runner.logger.info(unwrap_dataset(dataset).summary())
        cfg.setdefault('collate_fn', dict(type='pseudo_collate'))
        try:
            self.meta_loader = Runner.build_dataloader(cfg)
        except (ValueError, TypeError, KeyError) as e:
            raise type(e)(f'{KEY}.meta_loader: {e}') from None
        model.setup_reweighting(len(classes) if classes else len(counts),
                                labels, counts, self.meta_loader)

    def _setup_schedule(self, runner) -> None:
        scheds = list(runner.param_schedulers or [])
        if self.stage2_lr is not None:
            scheds.append(PARAM_SCHEDULERS.build(
                dict(type='TwoStageLR', lr=self.stage2_lr, begin=self.t1,
                     by_epoch=self.by_epoch, sgd=self.stage2_sgd),
                default_args=dict(optimizer=runner.optim_wrapper)))
            runner.param_schedulers = scheds
        TwoStageLR.end_stage1(scheds, len(runner.train_dataloader))

    def before_train(self, runner) -> None:
        if self._rng is not None:  # resume replays the augmentation draws
            random.setstate(self._rng['python'])
            np.random.set_state(self._rng['numpy'])
            torch.set_rng_state(self._rng['torch'])

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch and runner.epoch >= self.t1:
            self._switch(runner)
        model, epoch = unwrap_model(runner.model), runner.epoch
        if self.active:
            if model.meta_epoch is None or \
                    epoch - model.meta_epoch >= self.interval:
                self.meta_loader.sampler.set_epoch(epoch)
                model.refresh_meta(self.meta_loader, epoch)
            model.reweighter.reset_stats()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if not self.by_epoch and runner.iter >= self.t1 and not self.active:
            self._switch(runner)
            unwrap_model(runner.model).refresh_meta(self.meta_loader,
                                                    runner.epoch)

    def _switch(self, runner) -> None:
        if not self.active:
            self.active = True
            runner.logger.info(f'{KEY}: stage 2 (OT re-weighting) from '
                               f'{"epoch" if self.by_epoch else "iter"} '
                               f'{self.t1}')
            unwrap_model(runner.model).start_stage2(*self.freeze)

    def after_train_epoch(self, runner) -> None:
        if not self.active:
            return
        cw = unwrap_model(runner.model).reweighter.class_mean_weights()
        vals = [None if torch.isnan(v) else round(float(v), 4) for v in cw]
        runner.logger.info(f'{KEY}: class-mean batch weight (B*a, 1 = '
                           f'uniform), epoch {runner.epoch}: {vals}')
        if len(vals) <= 100:
            runner.visualizer.add_scalars(
                {f'ot_class_weight/{k}': v for k, v in enumerate(vals)
                 if v is not None}, step=runner.epoch)
        self.log.append(dict(epoch=runner.epoch, class_mean_weight=vals))
        if self.save_class_weights and runner.rank == 0:
            with open(osp.join(runner.work_dir, 'ot_class_weights.json'),
                      'w') as f:
                json.dump(dict(class_counts=self.counts, epochs=self.log), f)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['ot_reweight_hook'] = dict(
            class_weight_log=json.dumps(self.log), rng=dict(
                python=random.getstate(), numpy=np.random.get_state(),
                torch=torch.get_rng_state()))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('ot_reweight_hook')
        if state is not None:
            self.log = json.loads(state['class_weight_log'])
            self._rng = state['rng']
