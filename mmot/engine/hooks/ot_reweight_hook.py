# Copyright (c) mmot contributors. All rights reserved.
"""Glue of OT re-weighting into the mmengine Runner."""
import json
import os.path as osp
import random
import warnings
from typing import Optional

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from mmpretrain.registry import HOOKS, MODELS
from mmot.datasets.long_tail_dataset import MetaSubset
from mmot.ot.reweighter import (META_MODES, SOLVERS, OTReweighter,
                                class_prototypes)

KEY = 'custom_hooks.OTReweightHook'


def _build(cfg, what: str):
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'{KEY}.{what} must be a dict with a "type", got '
                         f'{cfg!r}')
    try:
        return MODELS.build(cfg)
    except KeyError as e:
        raise ValueError(f'{KEY}.{what}: unknown type {cfg["type"]!r} ({e}); '
                         'register it into mmpretrain.registry.MODELS') from None
    except (ValueError, TypeError) as e:  # name the config key
        raise type(e)(f'{KEY}.{what}: {e}') from None


def _rng_state() -> dict:
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _broadcast_from_rank0(tensors) -> None:
    """Overwrite ``tensors`` in place with rank 0's values (no-op outside
    distributed runs). Rank 0 is the rank whose state the checkpoints hold."""
    if not (torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1):
        return
    for t in tensors:
        torch.distributed.broadcast(t.data, src=0)


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float32 for half/bfloat16 (autocast), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def unwrap_dataset(dataset):
    """Walk ``.dataset`` of wrappers (ClassBalancedDataset, ...) down to a
    :class:`LongTailDataset`, or to the innermost dataset."""
    while not hasattr(dataset, 'get_meta_dataset') and hasattr(
            dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


@HOOKS.register_module()
class OTReweightHook(Hook):
    """Two-stage OT re-weighting (Guo et al., NeurIPS 2022) in the Runner.

    Stage 1 (before ``start_epoch``/``start_iter``) is plain training.
    At the switch the hook turns re-weighting on in the head
    (:class:`OTLinearClsHead`), sets the stage-2 learning rate alpha
    (``stage2_lr``; stage-1 parameter schedulers are ended there) and, with
    ``freeze_backbone``, freezes all but the head (eval mode, no gradients,
    so stage 2 costs less than stage 1). The switch is derived from the
    Runner's progress, so a resumed run lands in the same stage. Each stage-2
    iteration computes the batch weights from the features of the forward
    pass that computes the loss (one backbone pass).

    The meta set comes from the training dataset's :class:`LongTailDataset`
    wrapper (held out of training) or, with ``dynamic_meta=True``,
    ``meta_per_class`` images per class re-drawn from the training set every
    epoch (appendix E). Meta features are recomputed with the current model
    every ``meta_refresh_interval`` epochs of stage 2.

    Checkpoints carry the weight learner (weight vector or net) and its
    optimiser, the meta indices and features and the RNG of Q's random draws
    under ``checkpoint['ot_reweight']``.

    Args:
        start_epoch (int, optional): t1, first epoch of stage 2 (0-based, so
            ``start_epoch=200`` trains 200 epochs of stage 1). Give this or
            ``start_iter``.
        start_iter (int, optional): t1 in iterations.
        cost (dict): Cost config. Defaults to ``dict(type='CombinedCost')``.
        learner (dict): Weight learner config. Defaults to
            ``dict(type='WeightVector')``.
        reg (float): lambda of the entropic OT. Defaults to 0.1.
        max_iter (int): Sinkhorn iterations at most. Defaults to 200.
        tol (float): Sinkhorn tolerance (L1 marginal error). Defaults to 1e-6.
        check_every (int): Sinkhorn error check interval. Defaults to 10.
        grad (str): ``'implicit'``, ``'autodiff'`` or ``'envelope'``, see
            ``sinkhorn2``. Defaults to ``'implicit'`` (exact and cheap).
        meta_mode (str): ``'prototype'``, ``'whole'``, ``'random'`` or
            ``'stochastic_prototype'``. Defaults to ``'prototype'``.
        num_prototypes (int, optional): m for ``'stochastic_prototype'``.
        prototype_source (str): ``'feature'`` (mean of meta features, the
            paper) or ``'image'`` (features of the per-class mean image, the
            authors' code). Defaults to ``'feature'``.
        dynamic_meta (bool): Re-draw the meta set from the training set each
            epoch. Defaults to False.
        meta_per_class (int): Images per class for ``dynamic_meta``.
            Defaults to 10.
        meta_refresh_interval (int): Epochs between meta feature refreshes.
            Defaults to 1.
        meta_batch_size (int): Batch size for meta features. Defaults to 256.
        meta_loss_weight (float): Weight of the meta-set CE term (authors'
            code: 10). Defaults to 0.
        stage2_lr (float, optional): alpha for stage 2; None keeps the
            learning rate and schedulers. Defaults to None.
        freeze_backbone (bool): Train only the head in stage 2.
            Defaults to False.
        seed (int): Seed of the random parts of Q. Defaults to 0.
        save_class_weights (bool): Write the class-mean batch weights of each
            epoch to ``work_dir/ot_class_weights.json``. Defaults to True.
        solver (str): ``'mmot'`` (converged Sinkhorn) or ``'authors'`` (their
            stopping rule, unrolled gradient, float64; see
            :mod:`mmot.ot.authors`). Defaults to ``'mmot'``.
        authors_thresh (float): The authors' stopping threshold.
            Defaults to 0.1.
        meta_pipeline (str): Read the meta images with the dataset's
            ``meta_pipeline`` (``'meta'``, deterministic) or with the training
            pipeline (``'train'``: augmented, re-drawn at each refresh, the
            authors' code). Defaults to ``'meta'``.
        meta_forward_mode (str): Forward the meta images in ``'eval'`` mode,
            or in ``'train'`` mode (BatchNorm normalises with the meta batch's
            statistics and updates its running ones, the authors' code).
            Defaults to ``'eval'``.
        meta_loss_source (str): The meta-set CE term (``meta_loss_weight >
            0``) on the cached meta features (``'features'``: trains the
            classifier only) or on the meta images forwarded through the
            network every iteration (``'images'``: the authors' code; needs
            ``model.type='OTImageClassifier'``). Defaults to ``'features'``.
        freeze_mode (str): With ``freeze_backbone``: the frozen modules in
            ``'eval'`` mode (BatchNorm statistics frozen) or left in the
            loop's ``'train'`` mode (parameters frozen, BatchNorm running
            statistics still updated, the authors' code). Defaults to
            ``'eval'``.
        stage2_sgd (dict, optional): SGD settings put on every parameter
            group at the stage switch (keys ``momentum``, ``nesterov``,
            ``weight_decay``, ``dampening``), with the optimiser state
            (momentum buffers) cleared, as a fresh optimiser (the authors':
            ``dict(momentum=0.9, nesterov=True, weight_decay=5e-4)``).
            Defaults to None (the optimiser goes on as it is).
    """

    priority = 'NORMAL'

    def __init__(self,
                 start_epoch: Optional[int] = None,
                 start_iter: Optional[int] = None,
                 cost: dict = dict(type='CombinedCost'),
                 learner: dict = dict(type='WeightVector'),
                 reg: float = 0.1,
                 max_iter: int = 200,
                 tol: float = 1e-6,
                 check_every: int = 10,
                 grad: str = 'implicit',
                 meta_mode: str = 'prototype',
                 num_prototypes: Optional[int] = None,
                 prototype_source: str = 'feature',
                 dynamic_meta: bool = False,
                 meta_per_class: int = 10,
                 meta_refresh_interval: int = 1,
                 meta_batch_size: int = 256,
                 meta_loss_weight: float = 0.0,
                 stage2_lr: Optional[float] = None,
                 freeze_backbone: bool = False,
                 seed: int = 0,
                 save_class_weights: bool = True,
                 solver: str = 'mmot',
                 authors_thresh: float = 0.1,
                 meta_pipeline: str = 'meta',
                 meta_forward_mode: str = 'eval',
                 meta_loss_source: str = 'features',
                 freeze_mode: str = 'eval',
                 stage2_sgd: Optional[dict] = None):
        for name, v, ok in (('solver', solver, SOLVERS),
                            ('meta_pipeline', meta_pipeline, ('meta', 'train')),
                            ('meta_forward_mode', meta_forward_mode,
                             ('eval', 'train')),
                            ('meta_loss_source', meta_loss_source,
                             ('features', 'images')),
                            ('freeze_mode', freeze_mode, ('eval', 'train'))):
            if v not in ok:
                raise ValueError(f'{KEY}.{name} must be one of {ok}, got '
                                 f'{v!r}')
        if not (isinstance(authors_thresh, (int, float)) and authors_thresh > 0):
            raise ValueError(f'{KEY}.authors_thresh must be > 0, got '
                             f'{authors_thresh!r}')
        if stage2_sgd is not None:
            allowed = ('momentum', 'nesterov', 'weight_decay', 'dampening')
            if not isinstance(stage2_sgd, dict) or set(stage2_sgd) - set(
                    allowed):
                raise ValueError(f'{KEY}.stage2_sgd must be a dict with keys '
                                 f'from {allowed}, got {stage2_sgd!r}')
            m = stage2_sgd.get('momentum', 0.0)
            if not (isinstance(m, (int, float)) and 0 <= m < 1):
                raise ValueError(f'{KEY}.stage2_sgd.momentum must be in '
                                 f'[0, 1), got {m!r}')
            if not stage2_sgd.get('weight_decay', 0.0) >= 0:
                raise ValueError(f'{KEY}.stage2_sgd.weight_decay must be >= '
                                 f'0, got {stage2_sgd["weight_decay"]!r}')
            if stage2_sgd.get('nesterov') and not (
                    m > 0 and stage2_sgd.get('dampening', 0) == 0):
                raise ValueError(f'{KEY}.stage2_sgd: nesterov needs momentum '
                                 '> 0 and dampening 0')
        if freeze_mode != 'eval' and not freeze_backbone:
            warnings.warn(f'{KEY}.freeze_mode={freeze_mode!r} has no effect '
                          'without freeze_backbone=True')
        if meta_loss_source == 'images' and not meta_loss_weight > 0:
            warnings.warn(f"{KEY}.meta_loss_source='images' has no effect "
                          'with meta_loss_weight=0')
        if solver == 'authors' and (tol != 1e-6 or grad != 'implicit'):
            warnings.warn(f"{KEY}: tol and grad have no effect with solver="
                          "'authors' (its own stopping rule, unrolled "
                          'gradient)')
        if (start_epoch is None) == (start_iter is None):
            raise ValueError(f'{KEY}: give exactly one of start_epoch and '
                             f'start_iter (got {start_epoch}, {start_iter})')
        for name, v in (('start_epoch', start_epoch), ('start_iter', start_iter)):
            if v is not None and not (isinstance(v, int) and v >= 0):
                raise ValueError(f'{KEY}.{name} must be an int >= 0, got {v!r}')
        if not (isinstance(reg, (int, float)) and reg > 0):
            raise ValueError(f'{KEY}.reg (lambda) must be > 0, got {reg!r}')
        if meta_mode not in META_MODES:
            raise ValueError(f'{KEY}.meta_mode must be one of {META_MODES}, '
                             f'got {meta_mode!r}')
        if prototype_source not in ('feature', 'image'):
            raise ValueError(f"{KEY}.prototype_source must be 'feature' or "
                             f"'image', got {prototype_source!r}")
        if prototype_source == 'image' and meta_mode not in (
                'prototype', 'stochastic_prototype'):
            raise ValueError(f"{KEY}.prototype_source='image' needs a "
                             f'prototype meta_mode, got {meta_mode!r}')
        if grad not in ('implicit', 'autodiff', 'envelope'):
            raise ValueError(f"{KEY}.grad must be 'implicit', 'autodiff' or "
                             f"'envelope', got {grad!r}")
        if not (isinstance(meta_refresh_interval, int)
                and meta_refresh_interval >= 1):
            raise ValueError(f'{KEY}.meta_refresh_interval must be an int >= '
                             f'1, got {meta_refresh_interval!r}')
        if meta_loss_weight < 0:
            raise ValueError(f'{KEY}.meta_loss_weight must be >= 0, got '
                             f'{meta_loss_weight}')
        if stage2_lr is not None and not stage2_lr > 0:
            raise ValueError(f'{KEY}.stage2_lr must be > 0, got {stage2_lr}')
        if dynamic_meta and not (isinstance(meta_per_class, int)
                                 and meta_per_class >= 1):
            raise ValueError(f'{KEY}.meta_per_class must be an int >= 1, got '
                             f'{meta_per_class!r}')
        self.start_epoch = start_epoch
        self.start_iter = start_iter
        self.cost = _build(cost, 'cost')
        self.learner = _build(learner, 'learner')
        self.rw_kwargs = dict(
            reg=float(reg), max_iter=max_iter, tol=tol,
            check_every=check_every, grad=grad, meta_mode=meta_mode,
            num_prototypes=num_prototypes, seed=seed, solver=solver,
            authors_thresh=float(authors_thresh))
        self.prototype_source = prototype_source
        self.dynamic_meta = dynamic_meta
        self.meta_per_class = meta_per_class
        self.meta_refresh_interval = meta_refresh_interval
        self.meta_batch_size = meta_batch_size
        self.meta_loss_weight = float(meta_loss_weight)
        self.stage2_lr = stage2_lr
        self.freeze_backbone = freeze_backbone
        self.seed = seed
        self.save_class_weights = save_class_weights
        self.meta_pipeline = meta_pipeline
        self.meta_forward_mode = meta_forward_mode
        self.meta_loss_source = meta_loss_source
        self.freeze_mode = freeze_mode
        self.stage2_sgd = dict(stage2_sgd) if stage2_sgd else None
        self.reweighter: Optional[OTReweighter] = None
        self.active = False
        self._meta_epoch = None  # epoch whose meta features are loaded
        self._pending_state = None
        self._rng_to_restore = None
        self._class_weight_log = []
        self._saved_buffers = []

    # ------------------------------------------------------------------
    # set-up and validation (before training starts)
    # ------------------------------------------------------------------
    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) \
            else runner.model

    def before_run(self, runner) -> None:
        if getattr(runner, '_train_loop', None) is None or isinstance(
                runner._train_loop, dict):
            return  # not training (test/val only)
        model = self._model(runner)
        head = getattr(model, 'head', None)
        if head is None or not hasattr(head, 'reweighter'):
            raise TypeError(
                f'{KEY} needs a head that applies per-sample weights: set '
                "model.head.type='OTLinearClsHead' (got "
                f'{type(head).__name__})')
        if self.meta_loss_source == 'images' and not hasattr(
                model, 'set_meta_batch'):
            raise TypeError(
                f"{KEY}.meta_loss_source='images' forwards the meta images "
                "through the network: set model.type='OTImageClassifier' (got "
                f'{type(model).__name__})')
        loop = runner.train_loop
        if self.start_epoch is not None:
            if not hasattr(loop, 'max_epochs'):
                raise ValueError(f'{KEY}.start_epoch needs an epoch-based '
                                 'train loop; use start_iter')
            if self.start_epoch >= loop.max_epochs:
                raise ValueError(
                    f'{KEY}.start_epoch={self.start_epoch} must be < '
                    f'train_cfg.max_epochs={loop.max_epochs}: stage 2 would '
                    'never run')
        elif self.start_iter >= loop.max_iters:
            raise ValueError(f'{KEY}.start_iter={self.start_iter} must be < '
                             f'the max iterations {loop.max_iters}')

        if self.freeze_backbone and is_model_wrapper(runner.model) and \
                not getattr(runner.model, 'find_unused_parameters', True):
            raise ValueError(
                f'{KEY}.freeze_backbone=True under distributed training needs '
                'find_unused_parameters=True in the config (DDP otherwise '
                'waits for gradients of the frozen backbone in stage 2)')
        dataset = runner.train_dataloader.dataset
        src = unwrap_dataset(dataset)
        classes = dataset.metainfo.get('classes')
        num_classes = len(classes) if classes else None
        if num_classes is not None and head.num_classes != num_classes:
            raise ValueError(
                f'model.head.num_classes={head.num_classes} but the training '
                f'dataset has {num_classes} classes')
        num_classes = head.num_classes
        if hasattr(src, 'get_meta_dataset'):
            num_samples = src.num_source_samples
            labels = torch.full((num_samples, ), -1, dtype=torch.long)
            labels[torch.as_tensor(src.train_indices)] = torch.as_tensor(
                src.source_labels[src.train_indices])
            counts = torch.as_tensor(src.class_counts)
            self._lt = src
            runner.logger.info(src.summary())
        else:
            if not self.dynamic_meta:
                raise ValueError(
                    f'{KEY}: the training dataset ({type(dataset).__name__}) '
                    'has no held-out meta set. Wrap it: train_dataloader.'
                    "dataset=dict(type='LongTailDataset', dataset=...), or set "
                    f'{KEY}.dynamic_meta=True')
            self._lt = None
            num_samples = len(dataset)
            y = np.asarray([dataset.get_cat_ids(i)[0] for i in range(num_samples)])
            labels = torch.as_tensor(y, dtype=torch.long)
            counts = torch.bincount(labels, minlength=num_classes)
        if self.dynamic_meta:
            small = (counts < self.meta_per_class).nonzero().flatten()
            if len(small):
                raise ValueError(
                    f'{KEY}.meta_per_class={self.meta_per_class} but class '
                    f'{int(small[0])} has only {int(counts[small[0]])} '
                    'training images')
        self._train_labels = labels
        if self.rw_kwargs['meta_mode'] == 'stochastic_prototype' and not (
                self.rw_kwargs['num_prototypes']
                and 0 < self.rw_kwargs['num_prototypes'] <= num_classes):
            raise ValueError(f'{KEY}.num_prototypes must be in [1, '
                             f'{num_classes}] for stochastic_prototype')
        self.learner.build(num_samples, labels, counts, head.in_channels)
        self.reweighter = OTReweighter(
            self.learner, self.cost, num_classes, **self.rw_kwargs)
        head.__dict__['reweighter'] = self.reweighter
        # the head's cached-feature meta term; 'images' is the model's
        head.__dict__['meta_loss_weight'] = (
            self.meta_loss_weight if self.meta_loss_source == 'features'
            else 0.0)
        self._meta_indices = None
        if self._lt is not None:
            self._meta_indices = torch.as_tensor(self._lt.meta_indices)
        if self._pending_state is not None:
            self._restore(self._pending_state)
            self._pending_state = None

    # ------------------------------------------------------------------
    # stage switch
    # ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        # Resume continues with the global RNG state of the checkpoint, so
        # random augmentations (and anything else drawing from it) replay
        # as in an uninterrupted run.
        if self._rng_to_restore is not None:
            _set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def _stage2_due(self, runner) -> bool:
        if self.start_epoch is not None:
            return runner.epoch >= self.start_epoch
        return runner.iter >= self.start_iter

    def before_train_epoch(self, runner) -> None:
        if self.reweighter is None:
            return
        if not self.active and self._stage2_due(runner):
            self._switch(runner)
        if self.active:
            self._maybe_refresh(runner)
            self.reweighter.reset_stats()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.reweighter is None:
            return
        if not self.active and self.start_iter is not None and \
                self._stage2_due(runner):
            self._switch(runner)
            self._maybe_refresh(runner, force=True)
        if self.active and (not self.freeze_backbone
                            or self.freeze_mode == 'train'):
            # BatchNorm statistics change in the forward pass, before the
            # loss is known: keep them, so a skipped step can restore them.
            bufs = list(self._model(runner).buffers())
            saved = self._saved_buffers
            if len(saved) != len(bufs) or any(
                    s[0] is not b for s, b in zip(saved, bufs)):
                saved = self._saved_buffers = [(b, torch.empty_like(b))
                                               for b in bufs]
            # one fused copy into preallocated buffers (no allocation)
            torch._foreach_copy_([s for _, s in saved], bufs)

    def _switch(self, runner) -> None:
        model = self._model(runner)
        head = model.head
        self.active = True
        head.__dict__['ot_active'] = True
        t1 = self.start_epoch if self.start_epoch is not None else self.start_iter
        unit = 'epoch' if self.start_epoch is not None else 'iter'
        runner.logger.info(f'OTReweightHook: stage 2 (OT re-weighting) from '
                           f'{unit} {t1}')
        self._guard_non_finite(runner)
        if self.stage2_lr is not None:
            self._end_schedulers(runner)
            for group in runner.optim_wrapper.param_groups:
                group['lr'] = self.stage2_lr
                group['initial_lr'] = self.stage2_lr
            runner.logger.info(f'OTReweightHook: stage-2 lr alpha = '
                               f'{self.stage2_lr}')
        if self.stage2_sgd is not None:
            optim = runner.optim_wrapper.optimizer
            for group in optim.param_groups:
                group.update(self.stage2_sgd)
            optim.state.clear()  # a fresh optimiser: no momentum buffers
            runner.logger.info(f'OTReweightHook: stage-2 SGD {self.stage2_sgd}'
                               ', optimiser state cleared')
        if self.freeze_backbone:
            frozen = [m for n, m in model.named_children()
                      if n not in ('head', 'data_preprocessor')]
            for m in frozen:
                m.requires_grad_(False)
                if self.freeze_mode == 'eval':
                    m.eval()
                    # stay in eval mode when the loop calls model.train()
                    m.train = lambda mode=True, _m=m: _m
            runner.logger.info(
                'OTReweightHook: stage 2 trains the head only' +
                (' (frozen modules stay in train mode: BatchNorm statistics '
                 'keep moving)' if self.freeze_mode == 'train' else ''))

    def _guard_non_finite(self, runner) -> None:
        """Stage 2 skips the model update of an iteration whose loss is not
        finite (with a warning) instead of writing NaN into the model; the
        buffers (BatchNorm statistics) of that forward pass are restored."""
        optim_wrapper = runner.optim_wrapper
        if getattr(optim_wrapper, '_ot_guarded', False):
            return
        update = optim_wrapper.update_params

        def guarded_update(loss, *args, **kwargs):
            ok = torch.isfinite(loss.detach()).all().float().reshape(1)
            if torch.distributed.is_available() and \
                    torch.distributed.is_initialized():
                torch.distributed.all_reduce(
                    ok, op=torch.distributed.ReduceOp.MIN)
            if ok.item() < 1:
                warnings.warn('OTReweightHook: non-finite loss in stage 2 '
                              f'(iter {runner.iter}); model update skipped')
                optim_wrapper.zero_grad()
                with torch.no_grad():
                    for buf, saved in self._saved_buffers:
                        buf.copy_(saved)
                return
            return update(loss, *args, **kwargs)

        optim_wrapper.update_params = guarded_update
        optim_wrapper._ot_guarded = True

    def _end_schedulers(self, runner) -> None:
        scheds = runner.param_schedulers or []
        if isinstance(scheds, dict):
            scheds = [s for v in scheds.values() for s in v]
        for s in scheds:
            if self.start_epoch is not None:
                stop = self.start_epoch if s.by_epoch else \
                    self.start_epoch * len(runner.train_dataloader)
            else:
                stop = self.start_iter
            s.end = min(s.end, stop)

    # ------------------------------------------------------------------
    # meta features
    # ------------------------------------------------------------------
    def _maybe_refresh(self, runner, force: bool = False) -> None:
        epoch = runner.epoch
        if (not force and self._meta_epoch is not None
                and epoch - self._meta_epoch < self.meta_refresh_interval):
            return
        self.refresh_meta(runner)
        self._meta_epoch = epoch

    def _draw_dynamic(self, runner) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100003 + runner.epoch)
        labels = self._train_labels
        picks = []
        for k in range(self.reweighter.num_classes):
            idx = (labels == k).nonzero().flatten()
            picks.append(idx[torch.randperm(len(idx), generator=g)[:self.meta_per_class]])
        return torch.cat(picks)

    def _meta_dataset(self, runner):
        if self.dynamic_meta:
            self._meta_indices = self._draw_dynamic(runner)
            src = self._lt.dataset if self._lt is not None else \
                runner.train_dataloader.dataset
            pipeline = self._lt.meta_pipeline if self._lt is not None else None
            if self.meta_pipeline == 'train':
                pipeline = None  # the source's own (training) pipeline
            return MetaSubset(src, self._meta_indices.tolist(), pipeline)
        meta = self._lt.get_meta_dataset()
        if self.meta_pipeline == 'train':
            meta = MetaSubset(meta.source, meta.indices, None)
        return meta

    @torch.no_grad()
    def refresh_meta(self, runner) -> None:
        """Recompute the meta features with the current model (in
        ``meta_forward_mode``), and hand the meta images to the model for
        ``meta_loss_source='images'``."""
        model = self._model(runner)
        # DDP does not synchronise BatchNorm statistics (mmengine's wrapper
        # sets broadcast_buffers=False): give every rank rank 0's, so the
        # meta features and the frozen backbone's batch features agree on
        # all ranks and with the checkpoint.
        _broadcast_from_rank0(list(model.buffers()))
        meta_set = self._meta_dataset(runner)
        loader = DataLoader(meta_set, batch_size=self.meta_batch_size,
                            shuffle=False, num_workers=0,
                            collate_fn=pseudo_collate)
        was_training = model.training
        model.train(self.meta_forward_mode == 'train')
        keep_images = self.prototype_source == 'image' or (
            self.meta_loss_source == 'images' and self.meta_loss_weight > 0)
        feats, labels, images = [], [], []
        for data in loader:
            data = model.data_preprocessor(data, False)
            y = torch.cat([s.gt_label for s in data['data_samples']])
            labels.append(y)
            if keep_images:
                images.append(data['inputs'])
            if self.prototype_source != 'image':
                feats.append(model.extract_feat(data['inputs'],
                                                stage='pre_logits'))
        labels = torch.cat(labels)
        if self.meta_loss_source == 'images' and self.meta_loss_weight > 0:
            model.set_meta_batch(torch.cat(images), labels.clone(),
                                 self.meta_loss_weight)
        if self.prototype_source == 'image':
            imgs = torch.cat(images)
            k = self.reweighter.num_classes
            mean_imgs = class_prototypes(
                imgs.flatten(1).to(_at_least_float32(imgs.dtype)), labels, k)
            mean_imgs = mean_imgs.view(k, *imgs.shape[1:]).to(imgs.dtype)
            feats = [model.extract_feat(mean_imgs, stage='pre_logits')]
            labels = torch.arange(k, device=labels.device)
        feats = torch.cat(feats)
        feats = feats.to(_at_least_float32(feats.dtype))
        _broadcast_from_rank0([feats])  # bit-identical Q on every rank
        model.train(was_training)
        self.reweighter.set_meta(feats, labels)

    # ------------------------------------------------------------------
    # logging
    # ------------------------------------------------------------------
    def after_train_epoch(self, runner) -> None:
        if not self.active or self.reweighter is None:
            return
        cw = self.reweighter.class_mean_weights()
        vals = [None if torch.isnan(v) else round(float(v), 4) for v in cw]
        runner.logger.info('OTReweightHook: class-mean batch weight (B*a, 1 ='
                           f' uniform), epoch {runner.epoch}: {vals}')
        if len(vals) <= 100:
            runner.visualizer.add_scalars(
                {f'ot_class_weight/{k}': v for k, v in enumerate(vals)
                 if v is not None}, step=runner.epoch)
        if self.save_class_weights and runner.rank == 0:
            self._class_weight_log.append(
                dict(epoch=runner.epoch, class_mean_weight=vals))
            path = osp.join(runner.work_dir, 'ot_class_weights.json')
            counts = self._lt.class_counts if self._lt is not None else None
            with open(path, 'w') as f:
                json.dump(dict(class_counts=counts,
                               epochs=self._class_weight_log), f)

    # ------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.reweighter is None:
            return
        state = self.reweighter.state_dict()
        state.update(
            rng=_rng_state(),
            active=self.active,
            meta_epoch=self._meta_epoch,
            meta_indices=self._meta_indices,
            class_weight_log=json.dumps(self._class_weight_log))
        checkpoint['ot_reweight'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('ot_reweight')
        if state is None:
            return
        if self.reweighter is None:
            self._pending_state = state
        else:
            self._restore(state)

    def _restore(self, state: dict) -> None:
        saved = state.get('meta_indices')
        if (not self.dynamic_meta and saved is not None
                and self._meta_indices is not None
                and not torch.equal(torch.as_tensor(saved).cpu(),
                                    self._meta_indices.cpu())):
            raise ValueError(
                'checkpoint ot_reweight.meta_indices differ from the meta set '
                'this config builds (LongTailDataset seed/meta_per_class '
                'changed?)')
        self.reweighter.load_state_dict(state)
        self._rng_to_restore = state.get('rng')
        self._meta_epoch = state.get('meta_epoch')
        if saved is not None:
            self._meta_indices = torch.as_tensor(saved)
        self._class_weight_log = json.loads(state.get('class_weight_log', '[]'))
