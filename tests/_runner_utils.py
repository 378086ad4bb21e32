"""Helpers to run the digits demo config through a real mmengine Runner."""
import copy
import os.path as osp

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmot  # noqa: F401
from mmpretrain.registry import HOOKS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'ot_reweight',
                'resnet8_1xb32_digits-lt-if20_ot.py')


@HOOKS.register_module(force=True)
class StopAfterEpoch(Hook):
    """Simulates a crash right after the checkpoint of an epoch is written."""
    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise KeyboardInterrupt('simulated crash')


def demo_cfg(work_dir, max_epochs=3, start_epoch=1, **hook):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.param_scheduler = dict(type='CosineAnnealingLR', T_max=max(start_epoch, 1),
                               by_epoch=True, begin=0, end=max(start_epoch, 1))
    cfg.randomness = dict(seed=0, deterministic=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=5)
    h = copy.deepcopy(cfg.custom_hooks[0])
    h.update(start_epoch=start_epoch, **hook)
    cfg.custom_hooks = [h]
    cfg.log_level = "WARNING"
    return cfg


def ot_hook(runner):
    return [h for h in runner.hooks if type(h).__name__ == 'OTReweightHook'][0]


def build(cfg):
    return Runner.from_cfg(cfg)
