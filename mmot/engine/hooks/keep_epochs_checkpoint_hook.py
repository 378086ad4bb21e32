# Copyright (c) mmot contributors. All rights reserved.
from typing import Sequence

from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class KeepEpochsCheckpointHook(Hook):
    """Keep the model weights of chosen epochs, beside the rolling
    checkpoints of mmengine's ``CheckpointHook``.

    ``CheckpointHook(max_keep_ckpts=k)`` deletes all but the newest ``k``
    checkpoints; a stage-1 model zoo needs particular epochs for good (e.g.
    160, where the authors' stage 2 starts, and the last one). After each
    listed epoch this hook writes ``work_dir/keep_epoch_<E>.pth`` with the
    model ``state_dict``, ``meta`` and message hub (no optimizer or
    scheduler state: these files are for ``load_from``, not for resuming).

    Args:
        epochs (Sequence[int]): 1-based epoch numbers to keep (``E`` = the
            checkpoint saved after ``E`` training epochs).
    """

    priority = 'VERY_LOW'

    def __init__(self, epochs: Sequence[int]):
        if isinstance(epochs, int):
            epochs = [epochs]
        epochs = list(epochs)
        if not epochs or not all(
                isinstance(e, int) and not isinstance(e, bool) and e >= 1
                for e in epochs):
            raise ValueError('KeepEpochsCheckpointHook: epochs must be a '
                             f'non-empty list of integers >= 1, got {epochs}')
        self.epochs = sorted(set(epochs))

    def after_train_epoch(self, runner) -> None:
        epoch = runner.epoch + 1  # runner.epoch is incremented after hooks
        if epoch in self.epochs:
            runner.save_checkpoint(
                runner.work_dir, f'keep_epoch_{epoch}.pth',
                save_optimizer=False, save_param_scheduler=False)
