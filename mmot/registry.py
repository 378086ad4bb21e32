# Copyright (c) mmot contributors. All rights reserved.
"""Registry nodes of the ``mmot`` scope.

mmot registers its modules into mmpretrain's registries
(``from mmpretrain.registry import MODELS`` ...). The nodes below exist so
that configs inherited with ``_base_ = ['mmot::...']`` work: mmengine marks
every module dict of such a base config with ``_scope_='mmot'``, imports
``mmot.registry`` and builds the module from the registry node whose scope is
``mmot``. Each node here is an empty child of the mmpretrain node of the same
kind, so a lookup falls through to mmpretrain and then to mmengine, exactly as
with ``default_scope='mmpretrain'``.

Do not register modules into these nodes; use mmpretrain's registries.
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]


def _child_of(parent: Registry) -> Registry:
    # Importing `mmot` registers all mmot modules; the parent's locations
    # register mmpretrain's lazily imported modules (e.g. its hooks).
    return Registry(
        f'mmot {parent.name}',
        parent=parent,
        scope='mmot',
        locations=['mmot'] + list(parent._locations))


RUNNERS = _child_of(mmpretrain_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child_of(mmpretrain_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child_of(mmpretrain_registry.LOOPS)
HOOKS = _child_of(mmpretrain_registry.HOOKS)
LOG_PROCESSORS = _child_of(mmpretrain_registry.LOG_PROCESSORS)
OPTIMIZERS = _child_of(mmpretrain_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child_of(mmpretrain_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child_of(
    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child_of(mmpretrain_registry.PARAM_SCHEDULERS)
DATASETS = _child_of(mmpretrain_registry.DATASETS)
DATA_SAMPLERS = _child_of(mmpretrain_registry.DATA_SAMPLERS)
TRANSFORMS = _child_of(mmpretrain_registry.TRANSFORMS)
MODELS = _child_of(mmpretrain_registry.MODELS)
MODEL_WRAPPERS = _child_of(mmpretrain_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child_of(mmpretrain_registry.WEIGHT_INITIALIZERS)
BATCH_AUGMENTS = _child_of(mmpretrain_registry.BATCH_AUGMENTS)
TASK_UTILS = _child_of(mmpretrain_registry.TASK_UTILS)
METRICS = _child_of(mmpretrain_registry.METRICS)
EVALUATORS = _child_of(mmpretrain_registry.EVALUATORS)
VISUALIZERS = _child_of(mmpretrain_registry.VISUALIZERS)
VISBACKENDS = _child_of(mmpretrain_registry.VISBACKENDS)
