"""Helpers to run the digits demo config through a real mmengine Runner,
in this process or as a 2-process DDP run (``dist_train``)."""
import copy
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmot  # noqa: F401
from mmpretrain.registry import HOOKS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'ot_reweight',
                'resnet8_1xb32_digits-lt-if20_ot.py')
# the authors' recipe on the same data
DEMO_AUTHORS = osp.join(ROOT, 'configs', 'ot_reweight',
                        'resnet8_1xb32_digits-lt-if20_ot-official.py')


@HOOKS.register_module(force=True)
class StopAfterEpoch(Hook):
    """Simulates a crash right after the checkpoint of an epoch is written."""
    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise KeyboardInterrupt('simulated crash')


HOOK_KEYS = ('start_epoch', 'start_iter', 'stage2_lr', 'stage2_sgd',
             'freeze_backbone', 'freeze_mode', 'meta_refresh_interval',
             'save_class_weights', 'meta_loader')
MODEL_KEYS = ('ot_features', 'prototype_source', 'meta_forward_mode',
              'meta_loss_weight', 'meta_loss_source')
LOADER_KEYS = dict(meta_pipeline=('pipeline', ),
                   meta_batch_size=('batch_size', ),
                   dynamic_meta=('sampler', 'dynamic'),
                   meta_per_class=('sampler', 'per_class'))


def load_tool(path: str):
    """A script under tools/ (e.g. ``'benchmark/collect.py'``) as a module."""
    full = osp.join(ROOT, 'tools', path)
    name = 'tool_' + path[:-3].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, full)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_ot(cfg, **opts):
    """Put OT options where they live: the hook (``default_hooks.
    ot_reweight``), the model, its re-weighter, or the hook's meta loader
    (``meta_pipeline``, ``meta_batch_size``, ``dynamic_meta``,
    ``meta_per_class``: the former hook keys' new places)."""
    hook = cfg.default_hooks.ot_reweight
    for k, v in opts.items():
        if k in HOOK_KEYS:
            if k in ('start_epoch', 'start_iter'):
                hook.pop('start_epoch', None)
                hook.pop('start_iter', None)
            hook[k] = v
        elif k in MODEL_KEYS:
            cfg.model[k] = v
        elif k in LOADER_KEYS:
            if 'meta_loader' not in hook:
                hook['meta_loader'] = {}
            d = hook['meta_loader']
            *path, last = LOADER_KEYS[k]
            for p in path:  # ConfigDict.setdefault stores a copy
                if p not in d:
                    d[p] = {'type': 'MetaSetSampler'}
                d = d[p]
            d[last] = v
        else:
            if 'reweighter' not in cfg.model:
                cfg.model['reweighter'] = {}
            cfg.model['reweighter'][k] = v
    return cfg


def demo_cfg(work_dir, max_epochs=3, start_epoch=1, config=DEMO, **ot):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.param_scheduler = dict(type='CosineAnnealingLR', T_max=max(start_epoch, 1),
                               by_epoch=True, begin=0, end=max(start_epoch, 1))
    cfg.randomness = dict(seed=0, deterministic=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=5)
    cfg.log_level = "WARNING"
    cfg.custom_hooks = []  # the OT hook is in default_hooks.ot_reweight
    return set_ot(cfg, start_epoch=start_epoch, **ot)


def ot_hook(runner):
    return [h for h in runner.hooks if type(h).__name__ == 'OTReweightHook'][0]


def ot_model(runner):
    from mmengine.model import is_model_wrapper
    m = runner.model
    return m.module if is_model_wrapper(m) else m


def build(cfg):
    return Runner.from_cfg(cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch_env(test_dir, **extra):
    """The environment of a training subprocess of the tests: one thread,
    and ``test_dir`` (the test module's folder, for its hooks'
    ``custom_imports``), the tests folder (this module) and the repository
    on the PYTHONPATH."""
    path = [test_dir, osp.dirname(osp.abspath(__file__)), ROOT,
            os.environ.get('PYTHONPATH', '')]
    return dict(os.environ, OMP_NUM_THREADS='1',
                PYTHONPATH=os.pathsep.join(path), **extra)


def dist_train(test_dir, cfg_file, procs, work_dir, *args):
    """``tools/dist_train.sh`` with ``procs`` gloo processes."""
    env = launch_env(test_dir, PORT=str(free_port()), PYTHON=sys.executable)
    return subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), str(cfg_file),
         str(procs), '--work-dir', str(work_dir), *args,
         '--cfg-options', 'env_cfg.dist_cfg.backend=gloo'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def pre_logits(model, inputs):
    """The classifier inputs of a batch of raw inputs."""
    data = model.data_preprocessor(dict(inputs=inputs), False)
    return model.extract_feat(data['inputs'], stage='pre_logits')


# ---------------------------------------------------------------------------
# the lossless CIFAR-10 of ../shared/data, a small extract (test_cifar_folders)
# ---------------------------------------------------------------------------
DATA = osp.normpath(osp.join(ROOT, '..', 'shared', 'data'))
if not osp.isdir(DATA):
    DATA = '/work/shared/data'
LOSSLESS = osp.join(DATA, 'cifar10-lossless.npz')
TRAIN_PER_CLASS = 30  # 10 meta + 20 for the long-tail cut
TEST_PER_CLASS = 10


@pytest.fixture(scope='module')
def cifar_png(tmp_path_factory):
    """The first images of every class of both splits of the lossless
    CIFAR-10, in the class folders the benchmark configs read (what
    ``unpack_cifar.py cifar10 DIR --png`` writes under ``DIR/png``, with the
    same NNNN numbering): the archive unpacked by its own script, then the
    subset written from the first training batch and the test batch."""
    import pickle

    import numpy as np
    from PIL import Image
    tmp = tmp_path_factory.mktemp('cifar10-lossless')
    subprocess.run([sys.executable, osp.join(DATA, 'unpack_cifar.py'),
                    'cifar10', str(tmp / 'raw')], check=True,
                   capture_output=True)
    batches = tmp / 'raw' / 'cifar-10-batches-py'
    with open(batches / 'batches.meta', 'rb') as f:
        classes = pickle.load(f, encoding='latin1')['label_names']
    root = tmp / 'png'
    for split, name, quota in (('train', 'data_batch_1', TRAIN_PER_CLASS),
                               ('test', 'test_batch', TEST_PER_CLASS)):
        with open(batches / name, 'rb') as f:
            batch = pickle.load(f, encoding='latin1')
        count = [0] * len(classes)
        for row, y in zip(batch['data'], batch['labels']):
            if count[y] == quota:
                continue
            folder = root / split / classes[y]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(row).reshape(3, 32, 32).transpose(
                1, 2, 0)).save(folder / f'{count[y]:04d}.png')
            count[y] += 1
        assert count == [quota] * len(classes), count
    for f in batches.iterdir():  # 180 MB
        f.unlink()
    return str(root)
