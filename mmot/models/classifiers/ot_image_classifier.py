# Copyright (c) mmot contributors. All rights reserved.
import inspect
import io
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine import dist
from mmengine.dataset import pseudo_collate

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmot.ot.reweighter import OTReweighter

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
       statistics nor draws dropout twice);
    3. the batch weights ``a = reweighter(z, labels, sample_idx)``
       (:class:`~mmot.ot.reweighter.OTReweighter`: one learner step on the
       OT loss against Q; ``a_i >= 0``, ``sum_i a_i = 1``);
    4. ``loss = sum_i a_i l_i`` with ``l_i`` the head's own loss module per
       sample (``head.loss(..., reduction_override='none')``: soft labels
       of mixup/cutmix, label smoothing, the head's margins all apply), so
       uniform weights give the mean loss of stage 1.

    Q is built from the meta features: the classifier inputs of the meta
    images forwarded in eval mode at each refresh (:meth:`refresh_meta`).
    The authors' code computes several of these steps differently:
    :class:`AuthorsOTImageClassifier`.

    Logged: ``ot_dist`` (the OT loss before the step), ``ot_w_max`` (max of
    ``B * a``) and, for ``solver='authors'``, ``ot_iters``.

    The re-weighter (``self.reweighter``, an ``nn.Module``: its learner's
    weights and momentum, the meta features, Q's draw counter) is a
    submodule whose state is buffers (and, for weight nets, parameters
    created after the Runner built its optimiser, outside autograd between
    steps), so ``model.to(device or dtype)``, ``state_dict``, resume and
    weights-only checkpoints carry it, and the Runner's optimiser never
    updates it (the learner's own step beta does, inside :meth:`loss`: see
    :class:`~mmot.models.weight_learners.BaseWeightLearner`). Its sizes are
    fixed before training (:meth:`setup_reweighting`), so an EMA copy
    (mmengine's ``EMAHook``) pairs it with the live model: with the default
    ``update_buffers=False`` the copy carries the live OT state unchanged
    (buffers are copied, not averaged); the OT state is not used at
    evaluation, so what EMA does with it never changes a prediction.
    Caches derived from it (the meta CE term's inputs, the feature cache)
    follow ``.to()`` too.

    Args:
        reweighter (dict): Arguments of :class:`OTReweighter` (``cost`` and
            ``learner`` as configs; ``num_classes`` comes from the training
            set). Defaults to the paper's: combined cost (1 - cosine + 0/1
            label), weight vector with beta 1e-3 and momentum 0.9,
            lambda 0.1, <= 200 Sinkhorn iterations, prototype Q.
        **kwargs: Arguments of ``ImageClassifier``.
    """

    # where z comes from (AuthorsOTImageClassifier: 'eval_forward' too)
    ot_features = 'loss_forward'

    def __init__(self, *args, reweighter: dict = dict(), **kwargs):
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
        loss_module = getattr(self.head, 'loss_module', None)
        params = inspect.signature(loss_module.forward).parameters if \
            loss_module is not None else {}
        if 'reduction_override' not in params and not any(
                p.kind == p.VAR_KEYWORD for p in params.values()):
            raise TypeError(
                f'{KEY}.head.loss ({type(loss_module).__name__}) cannot '
                'return per-sample losses (no reduction_override argument): '
                'OT re-weighting needs them')
        self.ot_active = False
        self.frozen_eval = False  # frozen backbone/neck stay in eval mode
        # epoch of the meta features (-1: none yet)
        self.register_buffer('meta_epoch_', torch.tensor(-1))
        self.feature_cache = None  # FeatureCache, filled by FeatureCacheHook

    # -- set-up, called by OTReweightHook ------------------------------------
    @property
    def meta_epoch(self) -> Optional[int]:
        """The epoch the meta features were computed at (None: not yet)."""
        e = int(self.meta_epoch_)
        return None if e < 0 else e

    def setup_reweighting(self, num_classes: int, labels: torch.Tensor,
                          counts: torch.Tensor, meta_loader) -> None:
        """Size the re-weighting state before training: K, each dataset
        index's class (-1 outside the training set), the class counts, and,
        from ``meta_loader`` (the hook's), the meta set's size and the OT
        feature width (one meta image through the model in eval mode, the
        random states restored after it, so training draws what it would
        have drawn without it)."""
        head_k = getattr(self.head, 'num_classes', None)
        if head_k is not None and head_k != num_classes:
            raise ValueError(f'{KEY}.head.num_classes={head_k} but the '
                             f'training dataset has {num_classes} classes')
        pre_k = getattr(self.data_preprocessor, 'num_classes', None)
        if pre_k is not None and pre_k != num_classes:
            raise ValueError(f'{KEY}.data_preprocessor.num_classes={pre_k} '
                             f'but the training dataset has {num_classes} '
                             'classes')
        if len(meta_loader.sampler) == 0:
            raise ValueError(f'{KEY}: the meta set is empty (the meta loader '
                             'yields no image): hold out meta images with '
                             'train_dataloader.dataset.meta_per_class >= 1')
        feat = self._probe_ot_feature(meta_loader.dataset)
        meta_size = self._meta_size(num_classes, meta_loader)
        try:
            self.reweighter.setup(num_classes, len(labels), labels, counts,
                                  feat.shape[1], meta_size, feat.dtype)
        except ValueError as e:
            raise ValueError(f'{KEY}.reweighter: {e}') from None

    def _meta_size(self, num_classes: int, meta_loader) -> int:
        """How many meta features Q is built from: one per meta image."""
        return len(meta_loader.sampler)

    @torch.no_grad()
    def _probe_ot_feature(self, dataset) -> torch.Tensor:
        """The OT features of the first meta images (<= 2, E), in eval
        mode."""
        states = (random.getstate(), np.random.get_state(),
                  torch.get_rng_state())
        try:
            # two images: some backbones squeeze a batch of one (LeNet5)
            items = [dataset[i] for i in range(min(2, len(dataset)))]
            data = self.data_preprocessor(pseudo_collate(items), False)
            with _EvalMode(self):
                feat = ot_input(self.extract_feat(data['inputs'],
                                                  stage='pre_logits'))
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
        return feat.to(_at_least_float32(feat.dtype))

    def start_stage2(self, freeze_backbone: bool = False,
                     freeze_mode: str = 'eval') -> None:
        """Turn the OT loss on; with ``freeze_backbone`` train the head only
        (``freeze_mode='eval'``: backbone and neck in eval mode, BatchNorm
        statistics frozen; ``'train'``: they follow the loop's mode, their
        BatchNorm statistics keep moving, the authors' code)."""
        self.ot_active = True
        if freeze_backbone:
            for name, m in self.named_children():
                if name not in ('head', 'data_preprocessor', 'reweighter'):
                    m.requires_grad_(False)
            self.frozen_eval = freeze_mode == 'eval'
            self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_eval:
            for name, m in self.named_children():
                if name not in ('head', 'data_preprocessor', 'reweighter'):
                    m.train(False)
        return self

    # -- the meta set ------------------------------------------------------
    @torch.no_grad()
    def refresh_meta(self, loader, epoch: Optional[int] = None) -> None:
        """Recompute the meta features (and Q) with the current model over
        ``loader`` (the hook's meta loader), in eval mode."""
        labels, _, _, pre = self._forward_meta(loader, False, False, True)
        self._set_meta(torch.cat(pre), labels, epoch)

    def _forward_meta(self, loader, train: bool, keep_images: bool,
                      keep_features: bool):
        """One pass over the meta loader in train or eval mode: the labels,
        and per batch the preprocessed images, the neck outputs and the
        OT features (the lists left empty when not asked for)."""
        # DDP: rank 0's BN statistics (mmengine's wrapper does not
        # broadcast buffers; the re-weighter's agree already)
        for name, buf in self.named_buffers():
            if not name.startswith('reweighter.'):
                dist.broadcast(buf, src=0)
        labels, images, neck, pre = [], [], [], []
        with _Mode(self, train):
            for data in loader:
                data = self.data_preprocessor(data, False)
                labels.append(torch.cat(
                    [s.gt_label for s in data['data_samples']]))
                if keep_images:
                    images.append(data['inputs'])
                if keep_features:
                    f = self.extract_feat(data['inputs'])
                    neck.append(f)
                    pre.append(ot_input(self.head.pre_logits(f)))
        return torch.cat(labels), images, neck, pre

    def _set_meta(self, feats, labels, epoch) -> None:
        """Q's meta features, bit-identical on every rank."""
        feats = feats.to(_at_least_float32(feats.dtype))
        dist.broadcast(feats, src=0)
        self.reweighter.set_meta(feats, labels)
        self.meta_epoch_.fill_(-1 if epoch is None else epoch)

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
        z = self._eval_forward_features(inputs)
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
        losses['ot_dist'] = stats['ot_dist']
        if 'ot_iters' in stats:
            losses['ot_iters'] = stats['ot_iters']
        losses['ot_w_max'] = (weights.detach() * weights.numel()).max()
        return losses

    def _eval_forward_features(self, inputs) -> Optional[torch.Tensor]:
        """The OT features from a separate forward before the training
        one; None: from the training forward (the paper)."""
        return None

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

    # -- device and state ------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        """``.to()``/``.cuda()``/``.double()`` also move the feature cache
        (derived from the frozen backbone)."""
        super()._apply(fn, *args, **kwargs)
        if self.feature_cache is not None:
            self.feature_cache.apply(fn)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        blob = state_dict.pop(prefix + '_extra_state', None)
        if blob is not None:  # written by mmot before the re-weighter was a
            # submodule: its serialised state becomes the submodule's keys
            state_dict.update(legacy_state(blob, prefix))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def extra_state(value) -> dict:
    """The dict that earlier mmot versions' ``OTImageClassifier.get_extra_state``
    serialised (``value``: the ``_extra_state`` entry of an old state dict
    or checkpoint), loaded with ``weights_only=True``."""
    if isinstance(value, dict):
        return value
    return torch.load(io.BytesIO(value.cpu().numpy().tobytes()),
                      map_location='cpu', weights_only=True)


def legacy_state(blob, prefix: str = '') -> dict:
    """The state-dict entries of an old checkpoint's ``_extra_state``
    (the re-weighter serialised into one uint8 tensor): the learner's
    tensors, its SGD momentum, the meta features and the meta epoch under
    today's names. Q's random generator has no counterpart (a random-Q run
    resumed from such a checkpoint draws a new sequence)."""
    try:
        old = extra_state(blob)
        rw, out = old['reweighter'], {}
        pre = prefix + 'reweighter.'
        if rw.get('meta_feats') is not None:
            out[pre + 'meta_feats'] = rw['meta_feats']
            out[pre + 'meta_labels'] = rw['meta_labels']
        learner = rw.get('learner') or {}
        params = learner.get('params') or {}
        for k, v in params.items():
            out[pre + 'learner.' + k] = v
        opt = learner.get('optimizer') or {}
        for i, name in enumerate(k for k in params
                                 if k not in ('w', 'bank', 'filled',
                                              'labels', 'in_train', 'steps',
                                              'step_lr', 'last_value',
                                              'g_prev', 'last_count')):
            buf = (opt.get('state') or {}).get(i, {}).get('momentum_buffer')
            if buf is not None:
                out[pre + 'learner.' + name.replace('.', '_') +
                    '_momentum'] = buf
        epoch = old.get('meta_epoch')
        out[prefix + 'meta_epoch_'] = torch.tensor(
            -1 if epoch is None else int(epoch))
        return out
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            'this checkpoint holds the OT re-weighting state in the old '
            f'serialised form (_extra_state) and it cannot be read ({e!r}): '
            'start stage 2 again from its stage-1 checkpoint (load_from), or '
            'load it with the mmot version that wrote it') from None


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


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float32 for half/bfloat16 (autocast), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)
