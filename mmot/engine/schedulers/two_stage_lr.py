# Copyright (c) mmot contributors. All rights reserved.
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmpretrain.registry import PARAM_SCHEDULERS

SGD_KEYS = ('momentum', 'nesterov', 'weight_decay', 'dampening')


def check_stage2(lr, sgd, key: str) -> None:
    """Validate a stage-2 ``lr`` and ``sgd`` settings (errors name ``key``,
    the config key they came from)."""
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f'{key}.stage2_lr must be > 0, got {lr!r}')
    if sgd is None:
        return
    if lr is None:
        raise ValueError(f'{key}.stage2_sgd has no effect without stage2_lr')
    if not isinstance(sgd, dict) or set(sgd) - set(SGD_KEYS):
        raise ValueError(f'{key}.stage2_sgd must be a dict with keys from '
                         f'{SGD_KEYS}, got {sgd!r}')
    m = sgd.get('momentum', 0.0)
    if not (isinstance(m, (int, float)) and 0 <= m < 1) or not sgd.get(
            'weight_decay', 0) >= 0:
        raise ValueError(f'{key}.stage2_sgd: momentum must be in [0, 1) and '
                         f'weight_decay >= 0, got {sgd!r}')
    if sgd.get('nesterov') and (m == 0 or sgd.get('dampening', 0) != 0):
        raise ValueError(f'{key}.stage2_sgd: nesterov needs momentum > 0 and '
                         'dampening 0')


class _TwoStageParam(_ParamScheduler):
    """Sets a parameter to an absolute value from ``begin`` (t1) on.

    Stage 1 (before ``begin``) belongs to the user's own schedulers;
    :class:`OTReweightHook` ends them at t1 so they do not fire in stage 2.
    From ``begin`` on every step sets ``value * ratio_g`` on parameter group
    ``g``, where ``ratio_g`` is the group's initial value over the
    optimiser's default (``paramwise_cfg`` multipliers are kept). The value
    is a closed form of nothing but the step, so a run resumed at any epoch
    continues exactly.

    With ``sgd`` (keys ``momentum``, ``nesterov``, ``weight_decay``,
    ``dampening``) stage 2 also starts with a fresh SGD: at t1 the settings
    are put on every group and the optimiser state (momentum buffers) is
    cleared (the authors' code builds a new optimiser there). A resumed run
    gets both back from the optimiser's checkpoint.

    Args:
        optimizer: The optimiser or optim wrapper.
        param_name (str): The parameter (``'lr'``).
        value (float): Its stage-2 value for the optimiser's default group.
        begin (int): t1, in epochs (``by_epoch=True``) or iterations.
        end (int): End of stage 2. Defaults to INF.
        by_epoch (bool): Defaults to True.
        sgd (dict, optional): SGD settings of stage 2. Defaults to None.
    """

    def __init__(self, optimizer, param_name: str, value: float, begin: int,
                 end: int = INF, by_epoch: bool = True, sgd=None, **kwargs):
        name = f'param_scheduler.{type(self).__name__}'
        check_stage2(value, sgd, name)
        if not (isinstance(begin, int) and begin >= 0):
            raise ValueError(f'{name}.begin (t1) must be an int >= 0, got '
                             f'{begin!r}')
        self.value = float(value)
        self.sgd = dict(sgd) if sgd else None
        optim = getattr(optimizer, 'optimizer', optimizer)
        default = optim.defaults.get(param_name)
        groups = optim.param_groups
        self.ratios = [
            g.get(f'initial_{param_name}', g[param_name]) / default
            if default else 1.0 for g in groups]
        super().__init__(optimizer, param_name, begin=begin, end=end,
                         by_epoch=by_epoch, **kwargs)

    def _get_value(self):
        return [self.value * r for r in self.ratios]

    def step(self):
        super().step()
        if self.sgd and self._global_step == self.begin:
            optim = getattr(self.optimizer, 'optimizer', self.optimizer)
            for group in optim.param_groups:
                group.update(self.sgd)
            optim.state.clear()  # a fresh optimiser: no momentum buffers

    @staticmethod
    def end_stage1(schedulers, epoch_length: int) -> None:
        """End every other scheduler of ``schedulers`` at the ``begin`` (t1)
        of the first :class:`_TwoStageParam` among them (converted between
        epochs and iterations with ``epoch_length``), so the user's stage-1
        schedule does not fire in stage 2 (chainable schedulers multiply
        the current value)."""
        ours = [s for s in schedulers if isinstance(s, _TwoStageParam)]
        if not ours:
            return
        t1, by_epoch = ours[0].begin, ours[0].by_epoch
        for s in schedulers:
            if not isinstance(s, _TwoStageParam):
                stop = t1 if s.by_epoch == by_epoch else \
                    t1 * epoch_length if by_epoch else -(-t1 // epoch_length)
                s.end = min(s.end, stop)


@PARAM_SCHEDULERS.register_module()
class TwoStageLR(_TwoStageParam):
    """The learning rate of a two-stage recipe: stage 1 is the user's
    schedule up to t1 (``begin``); stage 2 runs at the absolute ``lr``
    (the paper's alpha; 2e-5 on CIFAR-LT), param-group ratios kept.

    Example (what ``OTReweightHook(stage2_lr=...)`` appends)::

        param_scheduler = [..., dict(type='TwoStageLR', lr=2e-5, begin=200)]

    Args:
        optimizer: The optimiser or optim wrapper.
        lr (float): The stage-2 learning rate alpha.
        begin (int): t1.
        **kwargs: ``end``, ``by_epoch``, ``sgd`` of
            :class:`_TwoStageParam`.
    """

    def __init__(self, optimizer, lr: float, begin: int, **kwargs):
        super().__init__(optimizer, 'lr', lr, begin, **kwargs)
