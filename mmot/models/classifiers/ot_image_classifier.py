# Copyright (c) mmot contributors. All rights reserved.
import inspect
import io
from typing import List, Optional

import torch
import torch.nn.functional as F

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmot.ot.reweighter import OTReweighter, class_prototypes

OT_FEATURES = ('loss_forward', 'eval_forward')
# layers whose output depends on train/eval mode
_MODE_DEPENDENT = (torch.nn.modules.batchnorm._NormBase,
                   torch.nn.modules.dropout._DropoutNd)
KEY = 'model'


def _build(cfg, key: str):
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'{key} must be a dict with a "type", got {cfg!r}')
    try:
        return MODELS.build(cfg)
    except KeyError as e:
        raise ValueError(f'{key}: unknown type {cfg["type"]!r} ({e}); '
                         'register it into mmpretrain.registry.MODELS') from None
    except (ValueError, TypeError) as e:  # name the config key
        raise type(e)(f'{key}: {e}') from None


def _check(name, value, allowed):
    if value not in allowed:
        raise ValueError(f'{KEY}.{name} must be one of {allowed}, got '
                         f'{value!r}')


def ot_input(pre_logits) -> torch.Tensor:
    """The OT feature of a batch from the head's ``pre_logits``: the tensor
    itself, or the parts of a tuple/list (DeiT: class and distillation
    tokens, Conformer: CNN and transformer branches) flattened and
    concatenated. Batch and meta features go through this one function."""
    if isinstance(pre_logits, (tuple, list)):
        return torch.cat([p.flatten(1) for p in pre_logits], dim=1)
    return pre_logits.flatten(1)


class _EvalMode:
    """``with _EvalMode(module):`` eval mode inside, the previous mode
    after (no BatchNorm update, no dropout draw)."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.was = self.module.training
        self.module.train(False)

    def __exit__(self, *exc):
        self.module.train(self.was)


@MODELS.register_module()
class OTImageClassifier(ImageClassifier):
    """``ImageClassifier`` with OT re-weighting (Guo et al., NeurIPS 2022) in
    stage 2, for any mmpretrain ``ClsHead``: the user's backbone, neck and
    head are kept as configured.

    Until :class:`OTReweightHook` switches stage 2 on (:meth:`start_stage2`)
    it is exactly ``ImageClassifier``. In stage 2, :meth:`loss` does

    1. ``feats = extract_feat(inputs)`` (backbone and neck, one pass);
    2. the OT features ``z = ot_input(head.pre_logits(feats))`` of the
       classifier input, without gradients and with the head in eval mode
       (a linear head's ``pre_logits`` has no mode-dependent layer, so ``z``
       is the loss pass's classifier input; a head with BatchNorm or dropout
       in ``pre_logits``, e.g. Vig or StackedLinear, neither updates its
       statistics nor draws dropout twice). ``ot_features='eval_forward'``
       (the authors' code) instead takes ``z`` from a separate eval-mode
       forward of the whole network before the training forward;
    3. the batch weights ``a = reweighter(z, labels, sample_idx)``
       (:class:`~mmot.ot.reweighter.OTReweighter`: one learner step on the
       OT loss against Q; ``a_i >= 0``, ``sum_i a_i = 1``; or the learner's
       raw weights ``w_B`` for ``loss_weights='raw'``, the authors' code);
    4. ``loss = sum_i a_i l_i`` with ``l_i`` the head's own loss module per
       sample (``head.loss(..., reduction_override='none')``: soft labels
       of mixup/cutmix, label smoothing, the head's margins all apply), so
       uniform weights give the mean loss of stage 1; plus, with
       ``meta_loss_weight > 0``, ``loss_meta = meta_loss_weight *
       mean_j CE(meta_j)``.

    Logged: ``ot_dist`` (the OT loss before the step), ``ot_w_max`` (max of
    ``B * a``) and, for the authors' solver, ``ot_iters``.

    The re-weighter (its learner's weights and optimiser, Q's random
    generator, the meta features) is state of this model and travels in its
    ``state_dict`` (PyTorch's extra-state entry ``_extra_state``), so
    checkpoints, resume and EMA copies carry it. It is deliberately not a
    submodule: the learner's parameters (the weight vector, weight nets) are
    trained by the learner's own step beta, never by the Runner's optimiser.

    Args:
        reweighter (dict): Arguments of :class:`OTReweighter` (``cost`` and
            ``learner`` as configs; ``num_classes`` comes from the training
            set). Defaults to the paper's: combined cost (1 - cosine + 0/1
            label), weight vector with beta 1e-3 and momentum 0.9,
            lambda 0.1, <= 200 Sinkhorn iterations, prototype Q.
        ot_features (str): ``'loss_forward'`` or ``'eval_forward'``, see
            step 2. Defaults to ``'loss_forward'``.
        prototype_source (str): Q's prototypes from the meta features
            (``'feature'``, the paper) or the features of the per-class mean
            meta image (``'image'``, the authors' code). Defaults to
            ``'feature'``.
        meta_forward_mode (str): Forward the meta images in ``'eval'`` mode,
            or in ``'train'`` mode (BatchNorm normalises with the meta batch
            and updates its running statistics, the authors' code).
            Defaults to ``'eval'``.
        meta_loss_weight (float): Weight of the meta-set CE term (authors'
            code: 10). Defaults to 0.
        meta_loss_source (str): The meta CE on the head applied to the
            cached meta backbone features (``'features'``: trains the head
            only) or on the meta images forwarded through the network every
            iteration (``'images'``, the authors' code). Defaults to
            ``'features'``.
        reuse_meta_forward (bool): With ``meta_loss_source='images'`` and a
            frozen backbone and neck, forward the epoch's meta images once
            and reuse the outputs at the epoch's later iterations: with the
            same images and frozen parameters they are the same (in train
            mode BatchNorm normalises with the meta batch's own statistics),
            and each later iteration applies the running-statistics update
            that forward would have made. Equal to forwarding them every
            iteration up to the rounding of those statistics
            (``tests/test_authors_recipe.py``); 4-5x cheaper at batch 16
            with 100 meta images. Off: forward every iteration. Not used
            when a frozen part has train-mode dropout. Defaults to True.
        **kwargs: Arguments of ``ImageClassifier``.
    """

    def __init__(self,
                 *args,
                 reweighter: dict = dict(),
                 ot_features: str = 'loss_forward',
                 prototype_source: str = 'feature',
                 meta_forward_mode: str = 'eval',
                 meta_loss_weight: float = 0.0,
                 meta_loss_source: str = 'features',
                 reuse_meta_forward: bool = True,
                 **kwargs):
        _check('ot_features', ot_features, OT_FEATURES)
        _check('prototype_source', prototype_source, ('feature', 'image'))
        _check('meta_forward_mode', meta_forward_mode, ('eval', 'train'))
        _check('meta_loss_source', meta_loss_source, ('features', 'images'))
        if not (isinstance(meta_loss_weight, (int, float))
                and meta_loss_weight >= 0):
            raise ValueError(f'{KEY}.meta_loss_weight must be >= 0, got '
                             f'{meta_loss_weight!r}')
        if meta_loss_source == 'images' and meta_loss_weight == 0:
            raise ValueError(f"{KEY}.meta_loss_source='images' has no effect "
                             'with meta_loss_weight=0')
        super().__init__(*args, **kwargs)
        rw = dict(reweighter)
        cost = _build(rw.pop('cost', dict(type='CombinedCost')),
                      f'{KEY}.reweighter.cost')
        learner = _build(
            rw.pop('learner', dict(type='WeightVector', lr=1e-3,
                                   momentum=0.9)),
            f'{KEY}.reweighter.learner')
        try:
            self.reweighter = OTReweighter(learner, cost, **rw)
        except (ValueError, TypeError) as e:
            raise type(e)(f'{KEY}.reweighter: {e}') from None
        if prototype_source == 'image' and self.reweighter.meta_mode not in (
                'prototype', 'stochastic_prototype'):
            raise ValueError(f"{KEY}.prototype_source='image' needs a "
                             'prototype reweighter.meta_mode, got '
                             f'{self.reweighter.meta_mode!r}')
        loss_module = getattr(self.head, 'loss_module', None)
        params = inspect.signature(loss_module.forward).parameters if \
            loss_module is not None else {}
        if 'reduction_override' not in params and not any(
                p.kind == p.VAR_KEYWORD for p in params.values()):
            raise TypeError(
                f'{KEY}.head.loss ({type(loss_module).__name__}) cannot '
                'return per-sample losses (no reduction_override argument): '
                'OT re-weighting needs them')
        self.ot_features = ot_features
        self.prototype_source = prototype_source
        self.meta_forward_mode = meta_forward_mode
        self.meta_loss_weight = float(meta_loss_weight)
        self.meta_loss_source = meta_loss_source
        self.reuse_meta_forward = bool(reuse_meta_forward)
        self._meta_forward = None  # (mode, outputs, BN batch statistics)
        self.ot_active = False
        self.frozen_eval = False  # frozen backbone/neck stay in eval mode
        self.meta_epoch: Optional[int] = None  # epoch of the meta features
        self._meta = None  # (neck features or images, labels) of the CE term
        self._pending_state = None  # re-weighter state loaded before setup
        self.feature_cache = None  # FeatureCache, filled by FeatureCacheHook

    # -- set-up, called by OTReweightHook ------------------------------------
    def setup_reweighting(self, num_classes: int, num_samples: int,
                          labels: torch.Tensor, counts: torch.Tensor) -> None:
        """The training set: K, dataset size, each index's class (-1 outside
        the training set), class counts."""
        head_k = getattr(self.head, 'num_classes', None)
        if head_k is not None and head_k != num_classes:
            raise ValueError(f'{KEY}.head.num_classes={head_k} but the '
                             f'training dataset has {num_classes} classes')
        try:
            self.reweighter.setup(num_classes, num_samples, labels, counts)
        except ValueError as e:
            raise ValueError(f'{KEY}.reweighter: {e}') from None
        if self._pending_state is not None:
            self.reweighter.load_state_dict(self._pending_state)
            self._pending_state = None

    def start_stage2(self, freeze_backbone: bool = False,
                     freeze_mode: str = 'eval') -> None:
        """Turn the OT loss on; with ``freeze_backbone`` train the head only
        (``freeze_mode='eval'``: backbone and neck in eval mode, BatchNorm
        statistics frozen; ``'train'``: they follow the loop's mode, their
        BatchNorm statistics keep moving, the authors' code)."""
        self.ot_active = True
        if freeze_backbone:
            for name, m in self.named_children():
                if name not in ('head', 'data_preprocessor'):
                    m.requires_grad_(False)
            self.frozen_eval = freeze_mode == 'eval'
            self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_eval:
            for name, m in self.named_children():
                if name not in ('head', 'data_preprocessor'):
                    m.train(False)
        return self

    # -- the meta set ------------------------------------------------------
    @torch.no_grad()
    def refresh_meta(self, loader, epoch: Optional[int] = None) -> None:
        """Recompute the meta features (and Q) with the current model over
        ``loader`` (the hook's meta loader), in ``meta_forward_mode``."""
        _broadcast_from_rank0(list(self.buffers()))  # DDP: rank 0's BN stats
        keep_images = self.prototype_source == 'image' or \
            self.meta_loss_source == 'images'
        neck, pre, labels, images = [], [], [], []
        with _Mode(self, self.meta_forward_mode == 'train'):
            for data in loader:
                data = self.data_preprocessor(data, False)
                labels.append(torch.cat(
                    [s.gt_label for s in data['data_samples']]))
                if keep_images:
                    images.append(data['inputs'])
                if self.prototype_source == 'feature' or (
                        self.meta_loss_source == 'features'
                        and self.meta_loss_weight > 0):
                    f = self.extract_feat(data['inputs'])
                    neck.append(f)
                    pre.append(ot_input(self.head.pre_logits(f)))
            labels = torch.cat(labels)
            if self.meta_loss_weight > 0:
                self._meta = (torch.cat(images) if self.meta_loss_source ==
                              'images' else _cat_feats(neck), labels.clone())
                self._meta_forward = None  # new meta images
            if self.prototype_source == 'image':
                imgs = torch.cat(images)
                k = self.reweighter.num_classes
                mean = class_prototypes(
                    imgs.flatten(1).to(_at_least_float32(imgs.dtype)),
                    labels, k).view(k, *imgs.shape[1:]).to(imgs.dtype)
                feats = ot_input(self.extract_feat(mean, stage='pre_logits'))
                labels = torch.arange(k, device=labels.device)
            else:
                feats = torch.cat(pre)
        feats = feats.to(_at_least_float32(feats.dtype))
        _broadcast_from_rank0([feats])  # bit-identical Q on every rank
        self.reweighter.set_meta(feats, labels)
        self.meta_epoch = epoch

    # -- the feature cache (FeatureCacheHook) ---------------------------------
    def fill_feature_cache(self, cache, loader, num_samples: int) -> None:
        """Fill ``cache`` (:class:`FeatureCache`) with the backbone (and
        neck) outputs over ``loader``, in eval mode; from then on the loss
        reads them instead of running the backbone. The backbone and neck
        must be frozen in eval mode in training, else the cache would
        differ from what they compute."""
        self.train(True)
        if self._feature_modules_vary(_MODE_DEPENDENT) or \
                self.ot_features == 'eval_forward':
            raise ValueError(
                'FeatureCacheHook: the backbone and neck must be frozen in '
                'eval mode (OTReweightHook freeze_backbone=True with '
                "freeze_mode='eval', or backbone.frozen_stages) and "
                "model.ot_features='loss_forward'")

        def extract(batch):
            data = self.data_preprocessor(batch, False)
            with _EvalMode(self):
                out = self.extract_feat(data['inputs'])
            return _sample_idx(data['data_samples'], 'cpu'), tuple(out)

        if cache.feats is None:  # else read from its file (FeatureCacheHook)
            cache.fill(extract, loader, num_samples)
        elif len(cache.filled) != num_samples:
            raise ValueError(f'FeatureCacheHook: the cache holds '
                             f'{len(cache.filled)} examples, the training '
                             f'set {num_samples}')
        self.feature_cache = cache

    def _features(self, inputs, data_samples):
        """Backbone and neck outputs: from the feature cache when filled."""
        if self.feature_cache is not None:
            return self.feature_cache.lookup(
                _sample_idx(data_samples, inputs.device))
        return self.extract_feat(inputs)

    # -- the loss ------------------------------------------------------------
    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        if not self.ot_active:
            return self.head.loss(self._features(inputs, data_samples),
                                  data_samples)
        z = None
        if self.ot_features == 'eval_forward':
            with torch.no_grad(), _EvalMode(self):
                z = ot_input(self.extract_feat(inputs, stage='pre_logits'))
        feats = self._features(inputs, data_samples)
        if z is None:
            with torch.no_grad(), _EvalMode(self.head):
                z = ot_input(self.head.pre_logits(feats))
        if 'gt_score' in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples])
        else:
            target = torch.cat([s.gt_label for s in data_samples])
        idx = _sample_idx(data_samples, z.device)
        weights, stats = self.reweighter(z, target, idx)
        losses = self.head.loss(feats, data_samples,
                                reduction_override='none')
        per_sample = losses['loss'].reshape(len(weights), -1).sum(dim=1)
        # float32 weights also under bf16 autocast, float64 stay float64
        # (the loss module's weight= path rounds them to float32)
        weights = weights.to(torch.promote_types(weights.dtype,
                                                 per_sample.dtype))
        losses['loss'] = (per_sample * weights).sum()
        if self._meta is not None and self.meta_loss_weight > 0:
            meta_in, meta_labels = self._meta
            if self.meta_loss_source == 'images':
                meta_in = self._meta_images_forward(meta_in)
            logits = self.head(meta_in)
            if isinstance(logits, (tuple, list)):  # Conformer: both branches
                logits = sum(logits) / len(logits)
            losses['loss_meta'] = self.meta_loss_weight * F.cross_entropy(
                logits, meta_labels.to(logits.device))
        losses['ot_dist'] = stats['ot_dist']
        if 'ot_iters' in stats:
            losses['ot_iters'] = stats['ot_iters']
        losses['ot_w_max'] = (weights.detach() * weights.numel()).max()
        return losses

    def feature_modules(self) -> list:
        """The modules ``extract_feat`` runs: the backbone and the neck."""
        return [self.backbone] + ([self.neck] if self.with_neck else [])

    def _feature_modules_vary(self, mode_types) -> bool:
        """Whether the backbone/neck outputs of an input can change from
        one call to the next: a parameter trains, or a module of
        ``mode_types`` is in train mode (dropout only with ``p > 0``). The
        one test behind both reuses of their outputs: the feature cache
        (BatchNorm and dropout must be in eval mode) and the meta-forward
        replay (dropout only: BatchNorm's update is replayed)."""
        frozen = self.feature_modules()
        if any(p.requires_grad for m in frozen for p in m.parameters()):
            return True
        dropout = torch.nn.modules.dropout._DropoutNd
        return any(
            x.training and not (isinstance(x, dropout) and x.p == 0)
            for m in frozen for x in m.modules() if isinstance(x, mode_types))

    def _meta_images_forward(self, images):
        """Backbone (and neck) outputs of the meta images: forwarded, or
        with ``reuse_meta_forward`` the first forward of this meta batch
        replayed (outputs reused, BatchNorm running statistics updated with
        the batch statistics it recorded)."""
        frozen = self.feature_modules()
        mode = tuple(x.training for m in frozen for x in m.modules())
        # BatchNorm in train mode is replayed below; a dropout draw is not
        if not self.reuse_meta_forward or self._feature_modules_vary(
                torch.nn.modules.dropout._DropoutNd):
            return self.extract_feat(images)
        if self._meta_forward is not None and self._meta_forward[0] == mode:
            _, out, stats = self._meta_forward
            for bn, mean, var in stats:
                _update_running_stats(bn, mean, var)
            return out
        stats, hooks = [], []

        def record(bn, args):  # the statistics this forward updates with
            mean = torch.zeros_like(bn.running_mean)
            var = torch.ones_like(bn.running_var)
            # momentum 1: the buffers become the batch mean and unbiased
            # variance exactly as the kernel computes them
            F.batch_norm(args[0], mean, var, None, None, True, 1.0, bn.eps)
            stats.append((bn, mean, var))

        for m in frozen:
            for x in m.modules():
                if isinstance(x, torch.nn.modules.batchnorm._BatchNorm) and \
                        x.training and x.track_running_stats:
                    hooks.append(x.register_forward_pre_hook(record))
        try:
            with torch.no_grad():
                out = self.extract_feat(images)
        finally:
            for h in hooks:
                h.remove()
        self._meta_forward = (mode, out, stats)
        return out

    # -- state ---------------------------------------------------------------
    def get_extra_state(self) -> torch.Tensor:
        """The re-weighter's state and the meta epoch, serialised into one
        uint8 tensor: the Runner broadcasts every ``state_dict`` value as a
        tensor under DDP, and checkpoints stay weights-only loadable (read
        it with :func:`extra_state`)."""
        buf = io.BytesIO()
        torch.save(dict(reweighter=self.reweighter.state_dict(),
                        meta_epoch=self.meta_epoch), buf)
        return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)

    def set_extra_state(self, state) -> None:
        state = extra_state(state)
        self.meta_epoch = state.get('meta_epoch')
        if self.reweighter.num_classes is None:
            # not set up (evaluation, or loaded before the hook's before_run)
            self._pending_state = state['reweighter']
        else:
            self.reweighter.load_state_dict(state['reweighter'])


def extra_state(value) -> dict:
    """The dict that :meth:`OTImageClassifier.get_extra_state` serialised
    (``value``: the ``_extra_state`` entry of a state dict or checkpoint),
    loaded with ``weights_only=True``."""
    if isinstance(value, dict):
        return value
    return torch.load(io.BytesIO(value.cpu().numpy().tobytes()),
                      map_location='cpu', weights_only=True)


def _sample_idx(data_samples, device) -> torch.Tensor:
    try:  # attribute access: .metainfo builds a dict per sample
        return torch.tensor([int(s.sample_idx) for s in data_samples],
                            dtype=torch.long, device=device)
    except AttributeError:
        raise KeyError(
            'OT re-weighting and the feature cache need each sample\'s '
            '"sample_idx": keep it in the PackInputs meta_keys of the '
            'training pipeline') from None


class _Mode(_EvalMode):
    """``with _Mode(module, train):`` that mode inside, the previous after."""

    def __init__(self, module, train: bool):
        super().__init__(module)
        self.mode = train

    def __enter__(self):
        self.was = self.module.training
        self.module.train(self.mode)


def _update_running_stats(bn, mean, var) -> None:
    """The running-statistics update of a train-mode BatchNorm forward whose
    batch had this mean and unbiased variance."""
    bn.num_batches_tracked.add_(1)
    m = bn.momentum if bn.momentum is not None else \
        1.0 / float(bn.num_batches_tracked)
    bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
    bn.running_var.mul_(1 - m).add_(var, alpha=m)


def _cat_feats(chunks):
    """Concatenate per-batch neck outputs (tuples of tensors or of lists)."""
    first = chunks[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(chunks)
    return type(first)(_cat_feats([c[i] for c in chunks])
                       for i in range(len(first)))


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float32 for half/bfloat16 (autocast), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def _broadcast_from_rank0(tensors) -> None:
    """Overwrite ``tensors`` with rank 0's values under DDP (mmengine's
    wrapper does not broadcast buffers), so meta features and the frozen
    backbone's batch features agree on all ranks and with the checkpoint."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and \
            dist.get_world_size() > 1:
        for t in tensors:
            dist.broadcast(t.data, src=0)
