# Copyright (c) mmot contributors. All rights reserved.
"""Faults: a killed run resumes bit-for-bit, damaged checkpoints are named
and skipped by auto-resume, non-finite stage-2 batches are skipped.

The kill tests run ``tools/train.py`` in subprocesses on the digits demo
(4 epochs, stage 2 from epoch 1, a checkpoint every epoch):

- ``ref``: uninterrupted;
- ``killed``: the same run, SIGKILLed by this test in the middle of the
  third epoch (the second of stage 2); a hook only makes the moment
  deterministic (it announces the iteration and waits to be killed);
- ``resumed``: ``tools/train.py --resume`` in the killed run's work dir;
- ``fallback``: a copy of the killed work dir whose last checkpoint was
  truncated; ``--resume`` skips it (with a warning) and resumes from the
  previous checkpoint.

Both continuations must end with exactly (bit for bit) the reference's
weight vector and model.
"""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.hooks import Hook

import mmot  # noqa: F401
from mmot.utils.checkpoint import (CorruptCheckpointError,
                                   find_resumable_checkpoint,
                                   list_checkpoints, verify_checkpoint)
from mmpretrain.registry import HOOKS

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TESTS)
from _runner_utils import (ROOT, build, demo_cfg, launch_env,  # noqa: E402
                           ot_model)

TRAIN = osp.join(ROOT, 'tools', 'train.py')
MAX_EPOCHS = 4
KILL_EPOCH, KILL_ITER = 2, 5  # 0-based: the 3rd epoch, 2nd of stage 2


def _ot(runner):
    return [h for h in runner.hooks if type(h).__name__ == 'OTReweightHook'][0]


@HOOKS.register_module(force=True)
class WaitForKill(Hook):
    """Announces (epoch, iteration) in ``marker`` and waits to be killed."""

    priority = 'LOWEST'

    def __init__(self, epoch, iteration, marker):
        self.epoch, self.iteration, self.marker = epoch, iteration, marker

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.epoch == self.epoch and batch_idx == self.iteration:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(600)


@HOOKS.register_module(force=True)
class ProbeResume(Hook):
    """Saves the OT state at the first iteration after a resume."""

    priority = 'LOWEST'

    def __init__(self):
        self.done = False

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.done:
            return
        self.done = True
        hook, model = _ot(runner), ot_model(runner)
        torch.save(
            dict(epoch=runner.epoch, iter=runner.iter, active=hook.active,
                 weights=model.reweighter.learner.weights.detach().clone(),
                 meta_feats=model.reweighter.meta_feats.clone()),
            osp.join(runner.work_dir, 'probe.pt'))


def _cfg_file(path, work_dir, *extra_hooks):
    cfg = demo_cfg(work_dir, max_epochs=MAX_EPOCHS, start_epoch=1,
                   meta_mode='random')
    cfg.custom_imports = dict(imports=['mmot', 'test_faults'],
                              allow_failed_imports=False)
    cfg.custom_hooks += list(extra_hooks)
    cfg.log_level = 'INFO'
    cfg.dump(str(path))
    return str(path)


def _env():
    return launch_env(TESTS)


def _train(cfg_file, work_dir, *args):
    return subprocess.Popen(
        [sys.executable, TRAIN, cfg_file, '--work-dir', str(work_dir), *args],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('faults')
    ref_dir, kill_dir, fb_dir = root / 'ref', root / 'killed', root / 'fb'
    marker = root / 'at_kill_point'
    ref = _train(_cfg_file(root / 'ref.py', ref_dir), ref_dir)
    killed = _train(
        _cfg_file(root / 'killed.py', kill_dir,
                  dict(type='WaitForKill', epoch=KILL_EPOCH,
                       iteration=KILL_ITER, marker=str(marker))), kill_dir)
    deadline = time.time() + 300
    while not marker.exists():
        assert killed.poll() is None, killed.communicate()[0][-4000:]
        assert time.time() < deadline, 'the run never reached the kill point'
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    kill_out, _ = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    after_kill = sorted(os.listdir(kill_dir))

    # a copy of the killed run whose last checkpoint is truncated
    shutil.copytree(kill_dir, fb_dir)
    (fb_dir / 'last_checkpoint').write_text(str(fb_dir / 'epoch_2.pth'))
    data = (fb_dir / 'epoch_2.pth').read_bytes()
    (fb_dir / 'epoch_2.pth').write_bytes(data[:len(data) // 2])

    resume_cfg = _cfg_file(root / 'resume.py', kill_dir,
                           dict(type='ProbeResume'))
    resumed = _train(resume_cfg, kill_dir, '--resume')
    fb = _train(_cfg_file(root / 'fb.py', fb_dir, dict(type='ProbeResume')),
                fb_dir, '--resume')
    logs = dict(ref=_finish(ref), kill=kill_out, resumed=_finish(resumed),
                fb=_finish(fb))
    return dict(root=root, ref=ref_dir, killed=kill_dir, fb=fb_dir,
                after_kill=after_kill, logs=logs)


def _assert_same_run(dir_a, dir_b):
    a = _load(osp.join(dir_a, f'epoch_{MAX_EPOCHS}.pth'))
    b = _load(osp.join(dir_b, f'epoch_{MAX_EPOCHS}.pth'))
    wa = a['state_dict']['reweighter.learner.weights']
    assert set(a['state_dict']) == set(b['state_dict'])  # OT state included
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    assert a['meta']['iter'] == b['meta']['iter']
    return wa


def test_killed_mid_stage2_and_resumed_matches_uninterrupted(runs):
    # killed in epoch index 2 (stage 2): epochs 1 and 2 were saved, not 3
    assert 'epoch_2.pth' in runs['after_kill']
    assert 'epoch_3.pth' not in runs['after_kill']
    assert (runs['killed'] / 'epoch_4.pth').is_file()
    log = runs['logs']['resumed']
    assert 'resumed epoch: 2' in log
    # it continued from epoch_2.pth with its weights, meta set and stage
    saved = _load(runs['killed'] / 'epoch_2.pth')['state_dict']
    probe = _load(runs['killed'] / 'probe.pt')
    assert probe['epoch'] == 2 and probe['active']
    assert torch.equal(probe['weights'], saved['reweighter.learner.weights'])
    assert torch.equal(probe['meta_feats'], saved['reweighter.meta_feats'])
    w = _assert_same_run(runs['ref'], runs['killed'])
    assert torch.isfinite(w).all() and not torch.equal(w, torch.ones_like(w))


def test_auto_resume_skips_truncated_last_checkpoint(runs):
    log = runs['logs']['fb']
    bad, good = runs['fb'] / 'epoch_2.pth', runs['fb'] / 'epoch_1.pth'
    assert f'auto-resume: skipping {bad}: Checkpoint {bad} is truncated or ' \
        'corrupt' in log
    assert f'falling back to the previous good checkpoint {good}' in log
    assert 'resumed epoch: 1' in log
    probe = _load(runs['fb'] / 'probe.pt')
    saved = _load(good)['state_dict']
    assert probe['epoch'] == 1 and probe['active']
    # epoch_1.pth ends stage 1: the learner's state, sized before training,
    # still holds its init
    w = saved['reweighter.learner.weights']
    assert torch.equal(w, torch.ones_like(w))
    assert torch.equal(probe['weights'], torch.ones_like(probe['weights']))
    _assert_same_run(runs['ref'], runs['fb'])


# ---------------------------------------------------------------------------
# damaged checkpoints, without a training run (what tools/train.py says for
# each: tests/test_tools/test_bad_inputs.py, rows ckpt-*)
# ---------------------------------------------------------------------------
def _damaged(tmp_path, ref_dir):
    """Copies of a real checkpoint: truncated, with flipped bytes, empty."""
    src = (ref_dir / 'epoch_1.pth').read_bytes()
    out = dict(good=tmp_path / 'epoch_1.pth',
               flipped=tmp_path / 'epoch_2.pth',
               trunc=tmp_path / 'epoch_3.pth',
               empty=tmp_path / 'epoch_4.pth')
    out['good'].write_bytes(src)
    out['trunc'].write_bytes(src[:len(src) - 100])
    flipped = bytearray(src)
    mid = len(flipped) // 2
    flipped[mid:mid + 8] = bytes(b ^ 0xFF for b in flipped[mid:mid + 8])
    out['flipped'].write_bytes(bytes(flipped))
    out['empty'].write_bytes(b'')
    return out


def test_verify_checkpoint_names_the_file(runs, tmp_path):
    f = _damaged(tmp_path, runs['ref'])
    verify_checkpoint(f['good'])
    for key, reason in (('trunc', 'is truncated or corrupt'),
                        ('flipped', 'Bad CRC-32'), ('empty', 'is empty')):
        with pytest.raises(CorruptCheckpointError) as info:
            verify_checkpoint(f[key])
        assert str(f[key]) in str(info.value) and reason in str(info.value)
    with pytest.raises(FileNotFoundError, match='Checkpoint file not found'):
        verify_checkpoint(tmp_path / 'nope.pth')
    # newest first; the fallback takes the newest one that loads
    assert list_checkpoints(tmp_path) == [
        str(f[k]) for k in ('empty', 'trunc', 'flipped', 'good')]
    msgs = []
    assert find_resumable_checkpoint(tmp_path, msgs.append) == str(f['good'])
    assert len(msgs) == 4 and 'falling back' in msgs[-1]


# ---------------------------------------------------------------------------
# non-finite inputs in stage 2 (in-process Runner)
# ---------------------------------------------------------------------------
@HOOKS.register_module(force=True)
class InjectNaN(Hook):
    """Puts NaN into one image of one stage-2 batch and records the state
    around that iteration."""

    priority = 'LOWEST'

    def __init__(self, epoch, iteration):
        self.epoch, self.iteration = epoch, iteration
        self.before = self.after = None

    def _state(self, runner):
        model = runner.model
        return dict(
            weights=ot_model(runner).reweighter.learner.weights.detach()
            .clone(),
            model={k: v.clone() for k, v in model.state_dict().items()})

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.epoch == self.epoch and batch_idx == self.iteration:
            assert _ot(runner).active
            inputs = data_batch['inputs']
            if isinstance(inputs, torch.Tensor):
                inputs = inputs.float()
                inputs[0] = float('nan')
            else:
                inputs = [x.float() for x in inputs]
                inputs[0][:] = float('nan')
            data_batch['inputs'] = inputs
            self.before = self._state(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.epoch == self.epoch and batch_idx == self.iteration:
            self.after = self._state(runner)


@pytest.mark.parametrize('freeze_backbone', [True, False])
def test_non_finite_batch_is_skipped(tmp_path, freeze_backbone):
    cfg = demo_cfg(tmp_path, max_epochs=2, start_epoch=1,
                   freeze_backbone=freeze_backbone)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.custom_hooks.append(dict(type='InjectNaN', epoch=1, iteration=3))
    runner = build(cfg)
    with pytest.warns(UserWarning) as record:
        runner.train()
    texts = [str(w.message) for w in record]
    assert any('non-finite OT loss or gradient' in t and 'weight update '
               'skipped' in t for t in texts), texts
    assert any('SkipNonFiniteOptimWrapper: non-finite loss at update' in t
               and 'model update skipped, buffers restored' in t
               for t in texts), texts
    probe = [h for h in runner.hooks if isinstance(h, InjectNaN)][0]
    assert probe.before is not None and probe.after is not None
    # that iteration changed nothing: weights, parameters, BN statistics
    assert torch.equal(probe.before['weights'], probe.after['weights'])
    for k, v in probe.before['model'].items():
        assert torch.equal(v, probe.after['model'][k]), k
    # training went on afterwards, and nothing is poisoned
    w = ot_model(runner).reweighter.learner.weights.detach()
    assert torch.isfinite(w).all()
    assert not torch.equal(w, probe.after['weights'])
    for k, v in runner.model.state_dict().items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
