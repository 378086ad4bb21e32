# Copyright (c) mmot contributors. All rights reserved.
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmpretrain.registry import PARAM_SCHEDULERS


class _TwoStageParam(_ParamScheduler):
    """Sets a parameter to an absolute value from ``begin`` (t1) on.

    Stage 1 (before ``begin``) belongs to the user's own schedulers;
    :class:`OTReweightHook` ends them at t1 so they do not fire in stage 2.
    From ``begin`` on every step sets ``value * ratio_g`` on parameter group
    ``g``, where ``ratio_g`` is the group's initial value over the
    optimiser's default (``paramwise_cfg`` multipliers are kept). The value
    is a closed form of nothing but the step, so a run resumed at any epoch
    continues exactly.

    Args:
        optimizer: The optimiser or optim wrapper.
        param_name (str): The parameter (``'lr'``).
        value (float): Its stage-2 value for the optimiser's default group.
        begin (int): t1, in epochs (``by_epoch=True``) or iterations.
        end (int): End of stage 2. Defaults to INF.
        by_epoch (bool): Defaults to True.
    """

    def __init__(self, optimizer, param_name: str, value: float, begin: int,
                 end: int = INF, by_epoch: bool = True, **kwargs):
        name = type(self).__name__
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f'param_scheduler.{name}.{param_name} must be '
                             f'> 0, got {value!r}')
        if not (isinstance(begin, int) and begin >= 0):
            raise ValueError(f'param_scheduler.{name}.begin (t1) must be an '
                             f'int >= 0, got {begin!r}')
        self.value = float(value)
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
        **kwargs: ``end``, ``by_epoch`` of :class:`_TwoStageParam`.
    """

    def __init__(self, optimizer, lr: float, begin: int, **kwargs):
        super().__init__(optimizer, 'lr', lr, begin, **kwargs)
