# Copyright (c) mmot contributors. All rights reserved.
"""OT re-weighting under DDP: 2 gloo processes on CPU (tools/dist_train.sh).

One run covers the whole distributed path of the digits demo:

1. a single process trains stage 1 for one epoch and writes ``epoch_1.pth``;
2. ``tools/dist_train.sh`` resumes it in 2 gloo processes (a single-process
   checkpoint loads under DDP), trains one more epoch of stage 1 under DDP
   (so the ranks' BatchNorm statistics drift apart, as in any DDP run) and
   one epoch of stage 2; a recording hook saves, on each rank, the meta
   features, the prototypes and every stage-2 batch (the augmented images
   and their ``sample_idx``) and the final weight vector;
3. the test replays stage 2 in this process and compares (1e-6).

The single-process reference: under DDP each rank computes the OT loss of
its own sub-batch and :class:`BaseWeightLearner` sums the learner's
gradients over the ranks before one identical SGD step. Since the gradient
of a sum is the sum of the gradients, the reference takes, for every
iteration, the recorded sub-batches of both ranks, computes their features
with the model of the DDP-written checkpoint at the switch (``epoch_2.pth``,
loaded here in a single process; the backbone is frozen in stage 2), the
per-sub-batch OT losses with the same ``OTReweighter`` math (cost, Sinkhorn,
measure), and steps once on their sum. Meta features and prototypes are
recomputed the same way from the meta set.

Finally the DDP-written last checkpoint resumes in a single process.
"""
import copy
import os.path as osp
import sys

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.runner import load_checkpoint
from torch.utils.data import DataLoader

import mmot  # noqa: F401
from mmot.ot.reweighter import class_prototypes
from mmpretrain.registry import DATASETS, HOOKS, MODELS

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TESTS)
from _runner_utils import (ROOT, build, demo_cfg, dist_train,  # noqa: E402
                           ot_hook, ot_model, pre_logits)

PROCS = 2


def _ot_hook(runner):
    hooks = [h for h in runner.hooks if type(h).__name__ == 'OTReweightHook']
    return hooks[0] if hooks else None


@HOOKS.register_module(force=True)
class RecordOTHook(Hook):
    """Saves, per rank, what stage 2 saw: meta features, prototypes, every
    batch (augmented images, labels, ``sample_idx``) and the final weights
    to ``work_dir/record_rank{rank}.pt``."""

    priority = 'LOWEST'  # after OTReweightHook switched / refreshed

    def __init__(self):
        self.batches = []
        self.meta = []

    def before_train_epoch(self, runner):
        hook = _ot_hook(runner)
        if hook is not None and hook.active:
            rw = ot_model(runner).reweighter
            self.meta.append(dict(
                epoch=runner.epoch, feats=rw.meta_feats.clone(),
                labels=rw.meta_labels.clone(),
                protos=rw.support()[0].clone()))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        hook = _ot_hook(runner)
        if hook is None or not hook.active:
            return
        samples = data_batch['data_samples']
        self.batches.append(dict(
            inputs=torch.stack(list(data_batch['inputs'])).clone(),
            idx=torch.tensor([int(s.metainfo['sample_idx']) for s in samples]),
            labels=torch.cat([s.gt_label for s in samples])))

    def after_train(self, runner):
        hook = _ot_hook(runner)
        torch.save(
            dict(rank=runner.rank, world_size=runner.world_size,
                 batches=self.batches, meta=self.meta,
                 weights=ot_model(runner).reweighter.learner.weights.detach()
                 .clone(),
                 meta_indices=torch.as_tensor(
                     hook.meta_loader.dataset.indices)),
            osp.join(runner.work_dir, f'record_rank{runner.rank}.pt'))


@HOOKS.register_module(force=True)
class SnapshotOTHook(Hook):
    """Keeps the OT state right after a checkpoint was loaded."""

    priority = 'LOWEST'

    def before_train(self, runner):
        rw = ot_model(runner).reweighter
        self.weights = rw.learner.weights.detach().clone()
        self.meta_feats = rw.meta_feats
        self.epoch = runner.epoch


def _dist_cfg(work_dir, max_epochs, start_epoch):
    cfg = demo_cfg(work_dir, max_epochs=max_epochs, start_epoch=start_epoch)
    cfg.custom_imports = dict(imports=['mmot', 'test_dist'],
                              allow_failed_imports=False)
    cfg.custom_hooks.append(dict(type='RecordOTHook'))
    cfg.log_level = 'INFO'
    return cfg


@pytest.fixture(scope='module')
def dist_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    single, ddp = root / 'single', root / 'ddp'
    # 1. stage 1, one epoch, single process
    cfg = demo_cfg(single, max_epochs=3, start_epoch=2)
    cfg.custom_hooks.append(dict(type='StopAfterEpoch', epoch=1))
    with pytest.raises(KeyboardInterrupt):
        build(cfg).train()
    assert (single / 'epoch_1.pth').is_file()
    # 2. epoch 2 (stage 1) and epoch 3 (stage 2) under DDP, 2 gloo processes
    cfg_file = root / 'dist_cfg.py'
    _dist_cfg(ddp, max_epochs=3, start_epoch=2).dump(str(cfg_file))
    proc = dist_train(TESTS, cfg_file, PROCS, ddp,
                      '--resume', str(single / 'epoch_1.pth'))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    recs = [torch.load(ddp / f'record_rank{r}.pt', weights_only=True)
            for r in range(PROCS)]
    return dict(root=root, single=single, ddp=ddp, recs=recs, log=out)


def test_ranks_see_distinct_batches_and_agree(dist_run):
    recs = dist_run['recs']
    assert [r['rank'] for r in recs] == list(range(PROCS))
    assert all(r['world_size'] == PROCS for r in recs)
    n = len(recs[0]['batches'])
    assert n >= 5 and all(len(r['batches']) == n for r in recs)
    # the ranks trained on different samples ...
    for t in range(n):
        a, b = (set(r['batches'][t]['idx'].tolist()) for r in recs)
        assert len(a & b) < len(a)
    # ... and hold the identical weight vector, meta set and Q
    w0 = recs[0]['weights']
    assert not torch.allclose(w0, torch.ones_like(w0))
    for r in recs[1:]:
        assert torch.equal(r['weights'], w0)
        assert torch.equal(r['meta_indices'], recs[0]['meta_indices'])
        assert len(r['meta']) == len(recs[0]['meta']) >= 1
        for m, m0 in zip(r['meta'], recs[0]['meta']):
            assert torch.equal(m['feats'], m0['feats'])
            assert torch.equal(m['protos'], m0['protos'])


@torch.no_grad()
def _metapre_logits(model, cfg):
    lt = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    loader = DataLoader(lt.get_meta_dataset(), batch_size=256,
                        collate_fn=pseudo_collate)
    feats, labels = [], []
    for data in loader:
        data = model.data_preprocessor(data, False)
        labels.append(torch.cat([s.gt_label for s in data['data_samples']]))
        feats.append(model.extract_feat(data['inputs'], stage='pre_logits'))
    return lt, torch.cat(feats), torch.cat(labels)



def test_weights_match_single_process_reference(dist_run, one_thread):
    recs, ddp = dist_run['recs'], dist_run['ddp']
    cfg = demo_cfg(ddp, max_epochs=3, start_epoch=2)
    # the model at the switch, from the checkpoint rank 0 wrote under DDP
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, str(ddp / 'epoch_2.pth'), map_location='cpu',
                    strict=True)
    model.eval()
    lt, meta_feats, meta_labels = _metapre_logits(model, cfg)
    k = model.head.num_classes
    protos = class_prototypes(meta_feats, meta_labels, k)
    for r in recs:
        torch.testing.assert_close(r['meta'][0]['feats'], meta_feats,
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(r['meta'][0]['protos'], protos,
                                   rtol=0, atol=1e-6)

    # the config's learner, cost and Sinkhorn settings, freshly built
    rw = MODELS.build(copy.deepcopy(model_cfg)).reweighter
    learner = rw.learner
    labels = torch.full((lt.num_source_samples, ), -1, dtype=torch.long)
    labels[lt.train_indices] = torch.as_tensor(
        lt.source_labels[lt.train_indices])
    learner.build(lt.num_source_samples, labels,
                  torch.as_tensor(lt.class_counts), model.head.in_channels)
    rw.setup(k)
    rw.set_meta(meta_feats, meta_labels)
    zq, yq = rw.support()
    # the reference: autograd through the measure and torch's SGD on one
    # vector, the losses of all ranks' batches summed
    w = torch.nn.Parameter(learner.weights.clone())
    opt = torch.optim.SGD([w], lr=learner.lr, momentum=learner.momentum,
                          weight_decay=learner.weight_decay)
    for t in range(len(recs[0]['batches'])):
        losses = []
        for r in recs:
            b = r['batches'][t]
            with torch.no_grad():
                z = pre_logits(model, b['inputs'])
                cost = rw.cost(z, b['labels'], zq, yq, k)
            wb = w[b['idx']].clamp(min=0)
            losses.append(rw.ot_loss_fn(cost)(wb / wb.sum()))
        opt.zero_grad()
        sum(losses).backward()
        opt.step()
        with torch.no_grad():
            w.clamp_(min=learner.min_weight)
    ref = w.detach()
    for r in recs:
        torch.testing.assert_close(r['weights'], ref, rtol=0, atol=1e-6)
    # the last checkpoint (rank 0, DDP) holds the same vector
    ck = torch.load(ddp / 'epoch_3.pth', map_location='cpu', weights_only=True)
    assert torch.equal(ck['state_dict']['reweighter.learner.weights'],
                       recs[0]['weights'])


def test_ddp_checkpoint_resumes_in_single_process(dist_run, tmp_path):
    ddp, recs = dist_run['ddp'], dist_run['recs']
    cfg = demo_cfg(tmp_path, max_epochs=4, start_epoch=2)
    cfg.custom_hooks.append(dict(type='SnapshotOTHook'))
    cfg.resume, cfg.load_from = True, str(ddp / 'epoch_3.pth')
    runner = build(cfg)
    runner.train()
    snap = [h for h in runner.hooks if isinstance(h, SnapshotOTHook)][0]
    assert snap.epoch == 3
    assert torch.equal(snap.weights, recs[0]['weights'])
    assert torch.equal(snap.meta_feats, recs[0]['meta'][-1]['feats'])
    hook, w = ot_hook(runner), ot_model(runner).reweighter.learner.weights
    assert hook.active and runner.epoch == 4
    assert torch.isfinite(w).all()
    assert not torch.equal(w.detach(), recs[0]['weights'])


def test_single_process_checkpoint_resumed_under_ddp(dist_run):
    # step 2 of the fixture resumed the single-process epoch_1.pth
    assert 'resumed epoch: 1' in dist_run['log']
    ck = torch.load(dist_run['ddp'] / 'epoch_3.pth', map_location='cpu',
                    weights_only=True)
    assert ck['meta']['epoch'] == 3
    assert ck['state_dict']['reweighter.meta_feats'].numel()  # stage 2
