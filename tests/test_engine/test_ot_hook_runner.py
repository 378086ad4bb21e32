"""OTReweightHook + OTImageClassifier through a real Runner (digits demo)."""
import glob
import json
import os.path as osp

import pytest
import torch

from _runner_utils import (StopAfterEpoch, build, demo_cfg, ot_hook,  # noqa: F401
                           ot_model, set_ot)


def _ckpt(work_dir, epoch):
    return torch.load(osp.join(work_dir, f'epoch_{epoch}.pth'), map_location='cpu')


def test_two_stage_run(tmp_path):
    runner = build(demo_cfg(tmp_path, max_epochs=3, start_epoch=1))
    hook = ot_hook(runner)
    runner.train()
    model = ot_model(runner)
    assert hook.active and model.ot_active
    lt = runner.train_dataloader.dataset
    w = model.reweighter.learner.weights.detach()
    assert len(w) == lt.num_source_samples
    train = torch.as_tensor(lt.train_indices)
    others = torch.ones(len(w), dtype=torch.bool)
    others[train] = False
    # stage 2 moved the weights of training samples only (no weight decay)
    assert not torch.allclose(w[train], torch.ones(len(train)))
    assert torch.equal(w[others], torch.ones(int(others.sum())))
    # the model's state dict (so the checkpoint) holds the OT state
    ck = _ckpt(tmp_path, 3)
    sd = ck['state_dict']
    assert torch.equal(sd['reweighter.learner.weights'], w)
    assert torch.equal(sd['reweighter.meta_feats'],
                       model.reweighter.meta_feats)
    # classifier only: backbone and BN stats frozen since the end of stage 1
    ck1 = _ckpt(tmp_path, 1)
    for k, v in ck['state_dict'].items():
        if k.startswith('backbone.'):
            assert torch.equal(v, ck1['state_dict'][k]), k
    assert not torch.equal(ck['state_dict']['head.fc.weight'],
                           ck1['state_dict']['head.fc.weight'])
    # OT loss logged
    logs = glob.glob(osp.join(tmp_path, '*', 'vis_data', 'scalars.json'))
    assert logs and 'ot_dist' in open(logs[0]).read()
    # the stage-2 learning rate alpha is in force and stage-1 schedulers ended
    assert runner.optim_wrapper.param_groups[0]['lr'] == pytest.approx(0.01)


def test_resume_after_switch_matches_uninterrupted(tmp_path):
    ref_dir, crash_dir = tmp_path / 'ref', tmp_path / 'crash'
    kw = dict(max_epochs=4, start_epoch=1, freeze_backbone=False,
              meta_mode='random')
    ref = build(demo_cfg(ref_dir, **kw))
    ref.train()
    w_ref = ot_model(ref).reweighter.learner.weights.detach().clone()

    cfg = demo_cfg(crash_dir, **kw)
    cfg.custom_hooks.append(dict(type='StopAfterEpoch', epoch=2))
    with pytest.raises(KeyboardInterrupt):
        build(cfg).train()
    cfg = demo_cfg(crash_dir, **kw)
    cfg.resume = True
    resumed = build(cfg)
    resumed.train()
    hook = ot_hook(resumed)
    assert hook.active
    assert torch.equal(ot_model(resumed).reweighter.learner.weights.detach(),
                       w_ref)
    sd_ref, sd = ref.model.state_dict(), resumed.model.state_dict()
    assert sd_ref.keys() == sd.keys()
    for k in sd_ref:  # the OT state (random Q's draw counter too) included
        assert torch.equal(sd_ref[k], sd[k]), k


@pytest.mark.parametrize('hook_kw, match', [
    (dict(cost=dict(type='NoSuchCost')), 'model.reweighter.cost: unknown type'),
    (dict(learner=dict(type='NoSuchLearner')),
     'model.reweighter.learner: unknown type'),
    (dict(meta_mode='everything'), 'model.reweighter: meta_mode'),
    (dict(reg=0.0), r'model.reweighter: reg \(lambda\) must be > 0'),
    (dict(reg=-1.0), r'model.reweighter: reg \(lambda\) must be > 0'),
])
def test_bad_hook_config(tmp_path, hook_kw, match):
    with pytest.raises(ValueError, match=match):
        build(demo_cfg(tmp_path, **hook_kw))


def _train_raises(cfg, match, exc=ValueError):
    runner = build(cfg)
    with pytest.raises(exc, match=match):
        runner.train()
    loop = runner._train_loop  # failed before the first iteration
    assert isinstance(loop, dict) or loop.iter == 0


def test_start_epoch_not_before_max_epochs(tmp_path):
    _train_raises(demo_cfg(tmp_path, max_epochs=3, start_epoch=3),
                  'start_epoch=3 must be < the training length 3')


def test_num_classes_mismatch(tmp_path):
    cfg = demo_cfg(tmp_path)
    cfg.model.head.num_classes = 12
    _train_raises(cfg, 'model.head.num_classes=12 but the training dataset has 10')


def test_meta_set_larger_than_a_class(tmp_path):
    cfg = demo_cfg(tmp_path)
    cfg.train_dataloader.dataset.meta_per_class = 500
    _train_raises(cfg, 'meta_per_class=500 but class 0')


def test_class_left_empty(tmp_path):
    cfg = demo_cfg(tmp_path)
    cfg.train_dataloader.dataset.imbalance_factor = 1e6
    _train_raises(cfg, 'has no training image left')


def test_head_without_weights(tmp_path):
    cfg = demo_cfg(tmp_path)
    cfg.model.type = 'ImageClassifier'
    for k in ('reweighter', 'prototype_source', 'meta_loss_weight'):
        cfg.model.pop(k)
    _train_raises(cfg, "model.type='OTImageClassifier'", TypeError)


def test_dataset_without_meta_set_needs_dynamic(tmp_path):
    cfg = demo_cfg(tmp_path)
    cfg.train_dataloader.dataset = cfg.train_dataloader.dataset.dataset
    _train_raises(cfg, 'has no held-out meta set')
    set_ot(cfg, dynamic_meta=True, meta_per_class=5)
    runner = build(cfg)
    runner.train()
    assert ot_hook(runner).active


def test_iteration_switch_with_image_prototypes(tmp_path):
    cfg = demo_cfg(tmp_path, max_epochs=2, start_epoch=1)
    cfg.model.type = 'AuthorsOTImageClassifier'  # its image prototypes
    set_ot(cfg, start_iter=15, prototype_source='image',
           meta_loss_weight=0.0, meta_loss_source='features',
           ot_features='loss_forward', meta_forward_mode='eval',
           freeze_backbone=False,
           learner=dict(type='WeightNet', hidden_dim=16, lr=0.1))
    runner = build(cfg)
    hook = ot_hook(runner)
    runner.train()
    assert hook.active
    rw = ot_model(runner).reweighter
    # image prototypes: one support point per class, labels 0..K-1
    assert rw.meta_feats.shape[0] == 10
    assert torch.equal(rw.meta_labels.cpu(), torch.arange(10))
    # the switch happened at iteration 15, inside epoch 1 (12 iters/epoch)
    logs = glob.glob(osp.join(tmp_path, '*', 'vis_data', 'scalars.json'))
    steps = [json.loads(line)['step'] for line in open(logs[0])
             if 'ot_dist' in line]
    assert steps and 15 <= min(steps) <= 20, steps
