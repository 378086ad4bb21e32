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
from mmot.datasets.long_tail_dataset import MetaSubset
from mmot.datasets.samplers.meta_set_sampler import dataset_labels
from mmot.engine.optim_wrappers import SkipNonFiniteOptimWrapper
from mmot.engine.schedulers import TwoStageLR

KEY = 'OTReweightHook'
SGD_KEYS = ('momentum', 'nesterov', 'weight_decay', 'dampening')


@HOOKS.register_module()
class OTReweightHook(Hook):
    """Switches stage 2 of OT re-weighting on at t1 and keeps Q fresh.

    The stage-2 path: the meta loader (``meta_loader``, a
    :class:`MetaSetSampler` over the held-out meta set) -> the model
    (:class:`OTImageClassifier`: meta features, the weighted loss) -> its
    re-weighter -> the learner -> the Sinkhorn solver. This hook only
    orchestrates: before training it gives the model the training set and
    appends a :class:`TwoStageLR` for ``stage2_lr`` (ending the user's
    schedulers at t1); at t1 (derived from the Runner's progress, so a
    resumed run lands in the same stage) it starts the model's stage 2; it
    triggers meta refreshes every ``meta_refresh_interval`` epochs and logs
    the class-mean weights. Non-finite losses are skipped by
    :class:`SkipNonFiniteOptimWrapper`.

    Args:
        start_epoch (int, optional): t1, first epoch of stage 2 (0-based).
            Give this or ``start_iter``.
        start_iter (int, optional): t1 in iterations.
        stage2_lr (float, optional): The paper's alpha from t1 on (a
            :class:`TwoStageLR`); None keeps the user's schedule.
        stage2_sgd (dict, optional): SGD settings (keys ``momentum``,
            ``nesterov``, ``weight_decay``, ``dampening``) put on every
            parameter group at t1 with the optimiser state cleared, a fresh
            optimiser (the authors': momentum 0.9, Nesterov, wd 5e-4).
        freeze_backbone (bool): Train the head only in stage 2.
        freeze_mode (str): ``'eval'`` or ``'train'``, see
            :meth:`OTImageClassifier.start_stage2`.
        meta_loader (dict): ``Runner.build_dataloader`` arguments of the
            meta loader, plus ``pipeline``: ``'meta'`` (the dataset's
            deterministic ``meta_pipeline``) or ``'train'`` (the training
            augmentation, the authors' code). With
            ``sampler.dynamic=True`` the meta set is drawn from the
            training set every epoch (appendix E).
        meta_refresh_interval (int): Epochs between meta refreshes.
        save_class_weights (bool): Write the class-mean weights of each
            epoch to ``work_dir/ot_class_weights.json``.
    """

    priority = 'NORMAL'

    def __init__(self, start_epoch=None, start_iter=None, stage2_lr=None,
                 stage2_sgd=None, freeze_backbone=False, freeze_mode='eval',
                 meta_loader=dict(), meta_refresh_interval=1,
                 save_class_weights=True):
        if (start_epoch is None) == (start_iter is None):
            raise ValueError(f'{KEY}: give exactly one of start_epoch and '
                             f'start_iter (got {start_epoch}, {start_iter})')
        t1 = start_epoch if start_iter is None else start_iter
        if not (isinstance(t1, int) and t1 >= 0):
            raise ValueError(f'{KEY}.start_epoch/start_iter must be an int '
                             f'>= 0, got {t1!r}')
        if freeze_mode not in ('eval', 'train'):
            raise ValueError(f"{KEY}.freeze_mode must be 'eval' or 'train', "
                             f'got {freeze_mode!r}')
        if freeze_mode != 'eval' and not freeze_backbone:
            raise ValueError(f'{KEY}.freeze_mode={freeze_mode!r} has no '
                             'effect without freeze_backbone=True')
        sgd = stage2_sgd or {}
        if not isinstance(sgd, dict) or set(sgd) - set(SGD_KEYS):
            raise ValueError(f'{KEY}.stage2_sgd must be a dict with keys from '
                             f'{SGD_KEYS}, got {stage2_sgd!r}')
        m = sgd.get('momentum', 0.0)
        if not (isinstance(m, (int, float)) and 0 <= m < 1) or not sgd.get(
                'weight_decay', 0) >= 0:
            raise ValueError(f'{KEY}.stage2_sgd: momentum must be in [0, 1) '
                             f'and weight_decay >= 0, got {stage2_sgd!r}')
        if sgd.get('nesterov') and (m == 0 or sgd.get('dampening', 0) != 0):
            raise ValueError(f'{KEY}.stage2_sgd: nesterov needs momentum > 0 '
                             'and dampening 0')
        if not (isinstance(meta_refresh_interval, int)
                and meta_refresh_interval >= 1):
            raise ValueError(f'{KEY}.meta_refresh_interval must be an int >= '
                             f'1, got {meta_refresh_interval!r}')
        loader = dict(batch_size=256, num_workers=0, pipeline='meta',
                      sampler=dict(type='MetaSetSampler'))
        loader.update(copy.deepcopy(meta_loader))
        if loader['pipeline'] not in ('meta', 'train') or not (
                isinstance(loader['batch_size'], int)
                and loader['batch_size'] >= 1):
            raise ValueError(f"{KEY}.meta_loader: pipeline must be 'meta' or "
                             "'train' and batch_size an int >= 1, got "
                             f'{meta_loader!r}')
        self.by_epoch = start_iter is None
        self.t1, self.stage2_lr, self.stage2_sgd = t1, stage2_lr, stage2_sgd
        if stage2_lr is not None and not (
                isinstance(stage2_lr, (int, float)) and stage2_lr > 0):
            raise ValueError(f'{KEY}.stage2_lr must be > 0, got '
                             f'{stage2_lr!r}')
        self.freeze = (freeze_backbone, freeze_mode)
        self.loader_cfg, self.interval = loader, meta_refresh_interval
        self.save_class_weights = save_class_weights
        self.active, self.log, self._rng = False, [], None

    @staticmethod
    def _model(runner):
        m = runner.model
        return m.module if is_model_wrapper(m) else m

    def before_run(self, runner) -> None:
        if getattr(runner, '_train_loop', None) is None or isinstance(
                runner._train_loop, dict):
            return  # test/val only
        model, loop = self._model(runner), runner.train_loop
        if not hasattr(model, 'setup_reweighting'):
            raise TypeError(f"{KEY} needs model.type='OTImageClassifier' (it "
                            'keeps your backbone, neck and head), got '
                            f'{type(model).__name__}')
        end = loop.max_epochs if self.by_epoch else loop.max_iters
        if self.t1 >= end:
            raise ValueError(f'{KEY}: t1={self.t1} must be < the training '
                             f'length {end}: stage 2 would never run')
        if self.freeze[0] and is_model_wrapper(runner.model) and \
                not getattr(runner.model, 'find_unused_parameters', True):
            raise ValueError(f'{KEY}.freeze_backbone=True under DDP needs '
                             'find_unused_parameters=True in the config')
        if runner.train_dataloader.batch_size == 1:
            warnings.warn(f'{KEY}: train_dataloader.batch_size=1: the OT '
                          'weight of a batch of one sample is always 1')
        if not getattr(runner.optim_wrapper, 'skip_non_finite', False):
            runner.logger.warning(
                f'{KEY}: non-finite stage-2 losses are not skipped; use '
                "optim_wrapper.type='SkipNonFiniteOptimWrapper'")
        self._setup_data(runner, model)
        self._setup_schedule(runner)

    def _setup_data(self, runner, model) -> None:
        dataset = runner.train_dataloader.dataset
        lt = dataset
        while not hasattr(lt, 'get_meta_dataset') and hasattr(lt, 'dataset'):
            lt = lt.dataset  # ClassBalancedDataset and other wrappers
        lt = lt if hasattr(lt, 'get_meta_dataset') else None
        classes = dataset.metainfo.get('classes')
        cfg = copy.deepcopy(self.loader_cfg)
        pipeline, dynamic = cfg.pop('pipeline'), cfg['sampler'].get('dynamic')
        if lt is not None:
            labels = torch.full((lt.num_source_samples, ), -1)
            labels[torch.as_tensor(lt.train_indices)] = torch.as_tensor(
                lt.source_labels[lt.train_indices])
            counts = torch.as_tensor(lt.class_counts)
            runner.logger.info(lt.summary())
            meta = MetaSubset(lt.dataset, lt.train_indices, lt.meta_pipeline
                              ) if dynamic else lt.get_meta_dataset()
        elif dynamic:
            labels = torch.as_tensor(dataset_labels(dataset))
            counts = torch.bincount(labels)
            meta = MetaSubset(dataset, range(len(dataset)), None)
        else:
            raise ValueError(
                f'{KEY}: the training dataset ({type(dataset).__name__}) has '
                "no held-out meta set. Wrap it: train_dataloader.dataset=dict("
                "type='LongTailDataset', dataset=...), or set "
                f'{KEY}.meta_loader.sampler.dynamic=True')
        if pipeline == 'train':
            meta = MetaSubset(meta.source, meta.indices, None)
        num_classes = len(classes) if classes else len(counts)
        model.setup_reweighting(num_classes, len(labels), labels, counts)
        self.counts = counts.tolist()
        cfg['dataset'] = meta
        cfg.setdefault('collate_fn', dict(type='pseudo_collate'))
        try:
            self.meta_loader = Runner.build_dataloader(cfg)
        except (ValueError, TypeError, KeyError) as e:
            raise type(e)(f'{KEY}.meta_loader: {e}') from None

    def _setup_schedule(self, runner) -> None:
        scheds = runner.param_schedulers or []
        if self.stage2_lr is not None:
            scheds = list(scheds) + [PARAM_SCHEDULERS.build(dict(
                type='TwoStageLR', lr=self.stage2_lr, begin=self.t1,
                by_epoch=self.by_epoch), default_args=dict(
                    optimizer=runner.optim_wrapper))]
            runner.param_schedulers = scheds
        if any(isinstance(s, TwoStageLR) for s in scheds):
            n = len(runner.train_dataloader)
            for s in scheds:  # stage 1's schedule ends at t1
                if not isinstance(s, TwoStageLR):
                    t1 = self.t1 if s.by_epoch == self.by_epoch else \
                        self.t1 * n if self.by_epoch else -(-self.t1 // n)
                    s.end = min(s.end, t1)

    def before_train(self, runner) -> None:
        if self._rng is not None:  # resume replays the augmentation draws
            random.setstate(self._rng['python'])
            np.random.set_state(self._rng['numpy'])
            torch.set_rng_state(self._rng['torch'])

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch and runner.epoch >= self.t1:
            self._switch(runner)
        model = self._model(runner)
        if self.active and (model.meta_epoch is None or
                            runner.epoch - model.meta_epoch >= self.interval):
            self.meta_loader.sampler.set_epoch(runner.epoch)
            model.refresh_meta(self.meta_loader, runner.epoch)
        if self.active:
            model.reweighter.reset_stats()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if not self.by_epoch and not self.active and runner.iter >= self.t1:
            self._switch(runner)
            self._model(runner).refresh_meta(self.meta_loader, runner.epoch)

    def _switch(self, runner) -> None:
        if self.active:
            return
        self.active = True
        runner.logger.info(f'{KEY}: stage 2 (OT re-weighting) from '
                           f'{"epoch" if self.by_epoch else "iter"} {self.t1}')
        self._model(runner).start_stage2(*self.freeze)
        if self.stage2_sgd:
            optim = runner.optim_wrapper.optimizer
            for group in optim.param_groups:
                group.update(self.stage2_sgd)
            optim.state.clear()  # a fresh optimiser: no momentum buffers

    def after_train_epoch(self, runner) -> None:
        if not self.active:
            return
        cw = self._model(runner).reweighter.class_mean_weights()
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
