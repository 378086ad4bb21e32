# Copyright (c) mmot contributors. All rights reserved.
"""The README drop-in fragment on *unmodified* mmpretrain configs, one per
head class: stage 1 and stage 2 (OT re-weighting) really train.

Each test writes a config file that is exactly the README fragment on top of
an mmpretrain config (found through the ``mmpretrain::`` scope) and
``configs/_base_/ot_reweight.py`` (by absolute path: mmot is no mim
package), loads it, and then applies *test-harness overrides* only to make
it tiny for one CPU thread: a tiny long-tailed folder of random images
instead of the real dataset, a small image size, batch 8, two epochs
(stage 1 = epoch 0, stage 2 = epoch 1), no validation, no checkpoints, no
pretrained weights. The configs' own models, losses, optimisers,
schedulers, augmentation pipelines and batch augmentations (Mixup/CutMix)
are kept.

Run: ``OMP_NUM_THREADS=1 python -m pytest -q -m dropin -s tests/test_models/test_dropin.py``
"""
import copy
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

import mmot  # noqa: F401
from mmot.datasets.long_tail_dataset import long_tail_counts
from mmot.ot.reweighter import OTReweighter
from mmpretrain.registry import HOOKS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FRAGMENT = osp.join(ROOT, 'configs', '_base_', 'ot_reweight.py')

NUM_CLASSES = 10
IMAGES_PER_CLASS = 8   # of the tiny source dataset (balanced)
META_PER_CLASS = 2     # held out per class as the balanced meta set
IMBALANCE_FACTOR = 5   # -> 27 training images: 6 5 4 3 2 2 2 1 1 1
BATCH_SIZE = 8         # -> 4 iterations per epoch (8, 8, 8, 3)
START_EPOCH = 1        # t1: stage 1 = epoch 0, stage 2 = epoch 1
MAX_EPOCHS = 2

# The README fragment, verbatim but for the fragment's path, t1, IF and
# `<the user's training dataset>` = the mmpretrain config's own one.
FRAGMENT_TEMPLATE = """\
_base_ = ['mmpretrain::{config}', '{fragment}']
custom_imports = dict(imports=['mmot'], allow_failed_imports=False)
model = _base_.ot_model            # keeps your backbone, neck and head
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=dict(_base_.ot_hook, start_epoch={t1}))
train_dataloader = dict(dataset=dict(_delete_=True, type='LongTailDataset', imbalance_factor={imf}, dataset=_base_.train_dataloader.dataset))
"""  # noqa: E501

# (mmpretrain config, its head class, image size of the tiny run (None:
#  the config's own), test-harness model overrides for a tiny CPU run).
# Every override below is a harness override, not something a user adds.
CASES = [
    # LinearClsHead; CIFAR ResNet-18 at its own 32x32.
    ('resnet/resnet18_8xb16_cifar10.py', 'LinearClsHead', None, {}),
    # StackedLinearClsHead (BN-free, HSwish hidden layer); 32x32.
    ('mobilenet_v3/mobilenet-v3-small_8xb16_cifar10.py',
     'StackedLinearClsHead', None, {}),
    # plain ClsHead (LeNet5 outputs the logits; the head has no parameter);
    # one-channel images resized to 32 by the config's pipeline.
    ('lenet/lenet5_mnist.py', 'ClsHead', None, {}),
    # VisionTransformerClsHead with the config's Mixup/CutMix (soft labels,
    # gt_score) and LabelSmoothLoss kept on: the required mixup case.
    ('deit/deit-tiny_4xb256_in1k.py', 'VisionTransformerClsHead', 32,
     {'model.backbone.img_size': 32, 'model.backbone.patch_size': 8}),
    # DeiTClsHead (class + distillation tokens: a tuple pre_logits); mmpretrain
    # trains it (it warns that it cannot train the distilled DeiT: there is
    # no teacher, both tokens are trained on the labels). Mixup/CutMix on.
    ('deit/deit-tiny-distilled_4xb256_in1k.py', 'DeiTClsHead', 32,
     {'model.backbone.img_size': 32, 'model.backbone.patch_size': 8}),
    # ConformerHead (CNN and transformer branches: a pair of logits); 32x32
    # gives a 2x2 token grid. Mixup/CutMix on.
    ('conformer/conformer-tiny-p16_8xb128_in1k.py', 'ConformerHead', 32, {}),
    # LeViTClsHead (BatchNorm + linear); mmpretrain raises
    # NotImplementedError when training its distillation mode, so the harness
    # turns distillation off. 64x64 -> a 4x4, 2x2, 1x1 token grid.
    # Mixup/CutMix on.
    ('levit/levit-128s_8xb256_in1k.py', 'LeViTClsHead', 64,
     {'model.backbone.img_size': 64, 'model.head.distillation': False}),
    # EfficientFormerClsHead; mmpretrain cannot train the distilled head
    # either (NotImplementedError), so distillation is off. Its attention
    # block needs the 7x7 grid of 224x224 inputs, so the harness makes the
    # arch tiny instead of the images (l1's keys, one block a stage).
    ('efficientformer/efficientformer-l1_8xb128_in1k.py',
     'EfficientFormerClsHead', None,
     {'model.backbone.arch': dict(layers=[1, 1, 1, 1],
                                  embed_dims=[8, 16, 16, 32],
                                  downsamples=[False, True, True, True],
                                  vit_num=1),
      'model.head.in_channels': 32, 'model.head.distillation': False}),
    # VigClsHead (fc + BatchNorm1d + GELU in pre_logits); Vig's position
    # embedding fixes 224x224 inputs and its archs are str-only (tiny is
    # the smallest). Mixup/CutMix on.
    ('vig/vig-tiny_8xb128_in1k.py', 'VigClsHead', None, {}),
    # LinearClsHead on ConvNeXt, whose configs keep an averaged copy of the
    # model (custom_hooks EMAHook, ABOVE_NORMAL): the OT state must be sized
    # before the copy and never change shape (a tiny arch, 32x32 -> 1x1).
    ('convnext/convnext-tiny_32xb128_in1k.py', 'LinearClsHead', 32,
     {'model.backbone.arch': dict(depths=[1, 1, 1, 1],
                                  channels=[8, 16, 16, 32]),
      'model.head.in_channels': 32}),
]


@HOOKS.register_module(force=True)
class DropinProbe(Hook):
    """Records, per iteration, the epoch, the logged outputs and whether the
    model's OT path was on, and the trainable parameters at the start and
    end of stage 2. LOWEST: runs after OTReweightHook's switch at t1."""

    priority = 'LOWEST'

    def __init__(self, start_epoch):
        self.start_epoch = start_epoch
        self.iters = []
        self.before = self.after = None

    @staticmethod
    def _model(runner):
        m = runner.model
        return m.module if is_model_wrapper(m) else m

    @classmethod
    def _params(cls, runner):
        return {n: p.detach().clone()
                for n, p in cls._model(runner).named_parameters()
                if p.requires_grad}

    def before_train_epoch(self, runner):
        if runner.epoch == self.start_epoch:
            self.before = self._params(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.iters.append(dict(
            epoch=runner.epoch, ot_active=self._model(runner).ot_active,
            outputs={k: float(v.detach()) if torch.is_tensor(v) else float(v)
                     for k, v in (outputs or {}).items()}))

    def after_train_epoch(self, runner):
        if runner.epoch == self.start_epoch:
            self.after = self._params(runner)


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    """A balanced folder dataset of random 32x32 PNGs (class k in ``c{k}``),
    each class with its own mean colour."""
    from PIL import Image
    root = tmp_path_factory.mktemp('dropin_images')
    rng = np.random.default_rng(0)
    for k in range(NUM_CLASSES):
        d = root / f'c{k}'
        d.mkdir()
        mean = rng.integers(40, 216, size=3)
        for i in range(IMAGES_PER_CLASS):
            img = np.clip(mean + rng.normal(0, 40, (32, 32, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(d / f'{i}.png')
    return str(root)


def _drop_pretrained(node):
    """Remove every ``init_cfg`` that loads weights (no internet)."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        inits = init if isinstance(init, list) else [init]
        if any(isinstance(i, dict) and i.get('type') == 'Pretrained'
               for i in inits):
            node['init_cfg'] = [i for i in inits if not (
                isinstance(i, dict) and i.get('type') == 'Pretrained')] or None
        for v in node.values():
            _drop_pretrained(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _drop_pretrained(v)


def _tiny_pipeline(pipeline, img_size, grey):
    """The config's own training pipeline, reading the tiny image folder
    (a loader first for the in-memory CIFAR/MNIST pipelines) and cropping
    to ``img_size`` (None: the config's size)."""
    pipeline = copy.deepcopy(list(pipeline))
    if pipeline[0]['type'] != 'LoadImageFromFile':
        pipeline.insert(0, dict(type='LoadImageFromFile',
                                color_type='grayscale' if grey else 'color'))
    for t in pipeline:
        if img_size is not None and t['type'] == 'RandomResizedCrop':
            t['scale'] = img_size
    return pipeline


def _harness_overrides(cfg, image_folder, img_size, model_overrides,
                       work_dir):
    """Test-harness overrides only: make the run tiny for one CPU thread."""
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    cfg.load_from = None
    cfg.resume = False
    # the tiny data: the config's dataset (already wrapped by the README's
    # LongTailDataset) becomes a folder of random images read with the
    # config's own training pipeline; a small meta set.
    lt = cfg.train_dataloader.dataset
    assert lt.type == 'LongTailDataset'
    preproc = cfg.get('data_preprocessor') or cfg.model.get(
        'data_preprocessor') or {}
    grey = len(preproc.get('mean', [0, 0, 0])) == 1
    lt.dataset = dict(type='CustomDataset', data_prefix=image_folder,
                      pipeline=_tiny_pipeline(lt.dataset.pipeline, img_size,
                                              grey))
    lt.meta_per_class = META_PER_CLASS
    cfg.train_dataloader.update(batch_size=BATCH_SIZE, num_workers=0,
                                persistent_workers=False)
    # two epochs; stage-1 schedulers that would begin after the run (e.g.
    # a cosine after a 20-epoch warm-up) are dropped.
    cfg.train_cfg = dict(by_epoch=True, max_epochs=MAX_EPOCHS)
    scheds = cfg.get('param_scheduler')
    if scheds is not None:
        scheds = scheds if isinstance(scheds, list) else [scheds]
        cfg.param_scheduler = [s for s in scheds
                               if s.get('begin', 0) < MAX_EPOCHS]
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1,
                                        save_last=False)
    # 10 classes instead of the config's (ImageNet's 1000)
    if cfg.get('data_preprocessor') is not None:
        cfg.data_preprocessor.num_classes = NUM_CLASSES
    if 'num_classes' in cfg.model.head:
        cfg.model.head.num_classes = NUM_CLASSES
    if 'num_classes' in cfg.model.backbone:  # LeNet5 outputs the logits
        cfg.model.backbone.num_classes = NUM_CLASSES
    _drop_pretrained(cfg.model)
    for key, value in model_overrides.items():  # set, not merged
        *parents, leaf = key.split('.')
        node = cfg
        for p in parents:
            node = node[p]
        node[leaf] = copy.deepcopy(value)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='DropinProbe', start_epoch=START_EPOCH)]
    return cfg


@pytest.mark.dropin
@pytest.mark.parametrize('config,head_cls,img_size,model_overrides', CASES,
                         ids=[c[0].split('/')[1][:-3] for c in CASES])
def test_dropin(config, head_cls, img_size, model_overrides, image_folder,
                tmp_path, monkeypatch):
    # spy (calls through) on the re-weighter: the labels the OT step sees
    ot_labels = []
    real_call = OTReweighter.__call__

    def spy(self, z, y, idx):
        ot_labels.append((tuple(z.shape), tuple(y.shape)))
        return real_call(self, z, y, idx)

    monkeypatch.setattr(OTReweighter, '__call__', spy)

    # 1. exactly the README fragment on the unmodified mmpretrain config
    path = tmp_path / 'dropin_cfg.py'
    path.write_text(FRAGMENT_TEMPLATE.format(
        config=config, fragment=FRAGMENT, t1=START_EPOCH,
        imf=IMBALANCE_FACTOR))
    cfg = Config.fromfile(str(path))
    assert cfg.model.type == 'OTImageClassifier'
    assert cfg.model.head.type == head_cls, 'the config has another head'
    assert cfg.optim_wrapper.type == 'SkipNonFiniteOptimWrapper'
    assert 'optimizer' in cfg.optim_wrapper  # the config's optimiser kept
    assert cfg.default_hooks.ot_reweight.type == 'OTReweightHook'
    has_mixup = bool((cfg.model.get('train_cfg') or {}).get('augments'))

    # 2. test-harness overrides (tiny CPU run), then train
    cfg = _harness_overrides(cfg, image_folder, img_size, model_overrides,
                             tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    runner.train()

    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    assert type(model).__name__ == 'OTImageClassifier'
    assert type(model.head).__name__ == head_cls
    # one OT step per stage-2 iteration, none in stage 1; with the config's
    # Mixup/CutMix the OT step gets the soft labels (gt_score, B x K)
    assert len(ot_labels) == (MAX_EPOCHS - START_EPOCH) * math.ceil(
        len(runner.train_dataloader.dataset) / BATCH_SIZE)
    for z_shape, y_shape in ot_labels:
        assert len(z_shape) == 2 and y_shape[0] == z_shape[0]
        assert y_shape == ((z_shape[0], NUM_CLASSES) if has_mixup else
                           (z_shape[0], )), (z_shape, y_shape)
    if has_mixup:
        assert model.data_preprocessor.batch_augments is not None
    lt = runner.train_dataloader.dataset
    assert lt.class_counts == long_tail_counts(
        IMAGES_PER_CLASS - META_PER_CLASS, NUM_CLASSES, IMBALANCE_FACTOR)
    assert len(lt) % BATCH_SIZE != 1  # no BatchNorm batch of one
    iters_per_epoch = math.ceil(len(lt) / BATCH_SIZE)

    probe = [h for h in runner.hooks if isinstance(h, DropinProbe)][0]
    stage1 = [r for r in probe.iters if r['epoch'] < START_EPOCH]
    stage2 = [r for r in probe.iters if r['epoch'] >= START_EPOCH]
    assert len(stage1) == START_EPOCH * iters_per_epoch
    assert len(stage2) == (MAX_EPOCHS - START_EPOCH) * iters_per_epoch
    # stage 1: the config's own training (the plain ImageClassifier loss)
    for r in stage1:
        assert not r['ot_active'] and 'ot_dist' not in r['outputs'], r
        assert math.isfinite(r['outputs']['loss']), r
    # stage 2: the OT-weighted loss, an OT distance every iteration
    for r in stage2:
        assert r['ot_active'], r
        assert math.isfinite(r['outputs']['loss']), r
        assert math.isfinite(r['outputs']['ot_dist']), r
        assert r['outputs']['ot_dist'] >= 0, r
        assert r['outputs']['ot_w_max'] >= 1 - 1e-4, r  # max of B * a
    assert model.ot_active is True
    assert math.isfinite(runner.message_hub.get_scalar(
        'train/ot_dist').current())

    # the held-out meta set was forwarded (Q's support)
    meta = model.reweighter.meta_feats
    assert meta is not None and meta.dim() == 2
    assert meta.shape[0] == NUM_CLASSES * META_PER_CLASS
    assert torch.isfinite(meta).all()
    assert model.meta_epoch == START_EPOCH
    # the batch weights of stage 2: class means of B * a (NaN: class unseen)
    cw = model.reweighter.class_mean_weights()
    assert cw.shape == (NUM_CLASSES, )
    seen = ~torch.isnan(cw)
    assert seen.any() and torch.isfinite(cw[seen]).all()
    assert (cw[seen] >= 0).all()
    ot_hook = [h for h in runner.hooks
               if type(h).__name__ == 'OTReweightHook'][0]
    assert [e['epoch'] for e in ot_hook.log] == list(
        range(START_EPOCH, MAX_EPOCHS))
    assert osp.isfile(osp.join(runner.work_dir, 'ot_class_weights.json'))

    # stage 2 updated the backbone (and the head, where it has parameters)
    assert probe.before is not None and probe.after is not None
    changed = {n for n in probe.before
               if not torch.equal(probe.before[n], probe.after[n])}
    assert any(n.startswith('backbone.') for n in changed), \
        'no backbone parameter changed in stage 2'
    head_params = [n for n in probe.before if n.startswith('head.')]
    if head_params:
        assert any(n in changed for n in head_params), \
            'no head parameter changed in stage 2'
    # an EMAHook of the config kept its copy of the model through stage 2
    # and carries the live OT state (buffers copied, update_buffers=False)
    for ema in [h for h in runner.hooks if isinstance(h, EMAHook)]:
        copy_rw = ema.ema_model.module.reweighter
        assert torch.equal(copy_rw.learner.weights,
                           model.reweighter.learner.weights)
    print(f'dropin: {config} head={type(model.head).__name__} stage2=ok')
