# Copyright (c) mmot contributors. All rights reserved.
"""The training class counts, read from the training dataset into the
losses and metrics that need them."""
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop

from mmpretrain.registry import HOOKS
from mmot.datasets.long_tail_dataset import (build_training_dataset,
                                             training_labels)
from mmot.utils import unwrap_model

KEY = 'ClassCountsHook'


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Fill the training class counts into every loss and metric built
    without them (``class_counts=None``), from the training dataset, so that
    no config types them.

    In ``before_run`` (``runner.train()``, ``runner.val()`` and
    ``runner.test()`` all call it) the hook looks for the consumers that
    still lack counts: the modules of the (unwrapped) model with a
    ``set_class_counts`` method and ``class_counts is None``
    (:class:`BalancedSoftmaxLoss`, :class:`LogitAdjustLoss`,
    :class:`LDAMLoss`), and the metrics of the built val / test evaluators
    with ``class_counts is None`` (:class:`LongTailMetric`,
    :class:`PostHocMetric`). If one needs them, the counts are read with
    :func:`~mmot.datasets.long_tail_dataset.training_labels` (the one
    function: ``LongTailDataset.class_counts`` through dataset wrappers, else
    the label histogram) from the runner's training dataset: the built train
    dataloader's, or in a run that does not train (``tools/test.py``) the
    ``dataset`` of the ``train_dataloader`` config, built alone. They are
    logged once and set with ``set_class_counts`` (or as the attribute of a
    metric without that method). Counts given in a config are kept.

    A metric that needs counts in a run without a training dataset is an
    error naming the metric and the keys to set. A loss is not needed to
    test: without a training dataset it is left without counts (its forward
    raises if it is ever called).

    mmot's ``configs/_base_/default_runtime.py`` registers it as
    ``default_hooks.class_counts`` (a dict merges with the base's,
    whereas ``custom_hooks``, a list, would be replaced by a config's own).

    Args:
        None. ``priority`` is ``'VERY_HIGH'``: the counts are set before any
        other hook's ``before_run`` looks at the model or the metrics.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.class_counts: Optional[List[int]] = None

    # -- what needs the counts ---------------------------------------------
    @staticmethod
    def _model_consumers(runner) -> List[Tuple[str, object]]:
        found = []
        model = unwrap_model(runner.model)
        for name, module in model.named_modules():
            if callable(getattr(module, 'set_class_counts', None)) and \
                    getattr(module, 'class_counts', 0) is None:
                # ClsHead builds its `loss` config into `loss_module`
                parts = ['model'] + [
                    'loss' if p == 'loss_module' else p
                    for p in name.split('.') if p]
                found.append(('.'.join(parts), module))
        return found

    @staticmethod
    def _metric_consumers(runner) -> List[Tuple[str, object]]:
        found = []
        for attr, key in (('_val_loop', 'val_evaluator'),
                          ('_test_loop', 'test_evaluator')):
            loop = getattr(runner, attr, None)
            evaluator = getattr(loop, 'evaluator', None) if isinstance(
                loop, BaseLoop) else None
            metrics = list(getattr(evaluator, 'metrics', []))
            for i, metric in enumerate(metrics):
                if getattr(metric, 'class_counts', 0) is None:
                    found.append((f'{key}.{i}' if len(metrics) > 1 else key,
                                  metric))
        return found

    # -- where the counts come from ----------------------------------------
    @staticmethod
    def _train_dataset(runner):
        """The training dataset: the built train loop's, else the one of
        the ``train_dataloader`` (a DataLoader, or a config whose
        ``dataset`` is built here), else None."""
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, BaseLoop):
            return loop.dataloader.dataset
        loader = getattr(runner, '_train_dataloader', None)
        if loader is None:
            return None
        if not isinstance(loader, dict):  # a built DataLoader
            return getattr(loader, 'dataset', None)
        dataset = loader.get('dataset')
        if not isinstance(dataset, dict):
            return dataset
        scope = getattr(runner, 'default_scope', None)
        return build_training_dataset(
            dataset, getattr(scope, 'scope_name', None) or 'mmpretrain')

    def before_run(self, runner) -> None:
        """Set the training class counts of every consumer lacking them."""
        losses = self._model_consumers(runner)
        metrics = self._metric_consumers(runner)
        if not losses and not metrics:
            return
        if self.class_counts is None:
            dataset = self._train_dataset(runner)
            if dataset is None:
                self._no_dataset(losses, metrics)
                return
            try:
                counts = training_labels(dataset)[1]
            except TypeError as err:
                name, obj = (metrics + losses)[0]
                raise ValueError(
                    f'{KEY}: {name} ({type(obj).__name__}) needs the training'
                    f' class counts, but {err}: set class_counts=[...] on '
                    'it') from err
            self.class_counts = [int(n) for n in counts.tolist()]
            shown = self.class_counts if len(self.class_counts) <= 100 else (
                f'{len(self.class_counts)} classes, max '
                f'{max(self.class_counts)}, min {min(self.class_counts)}')
            print_log(
                f'{KEY}: training class counts {shown} (from the training '
                f'dataset, {type(dataset).__name__}), set into '
                + ', '.join(name for name, _ in losses + metrics),
                logger='current')
        for _, obj in losses + metrics:
            if callable(getattr(obj, 'set_class_counts', None)):
                obj.set_class_counts(list(self.class_counts))
            else:
                obj.class_counts = list(self.class_counts)

    @staticmethod
    def _no_dataset(losses, metrics) -> None:
        if metrics:
            name, obj = metrics[0]
            raise ValueError(
                f'{KEY}: {name} ({type(obj).__name__}) needs the training '
                'class counts, but the run has no training dataset to read '
                f'them from: set class_counts=[...] on {name}, or give the '
                'config its train_dataloader')
        print_log(
            f'{KEY}: ' + ', '.join(
                f'{name} ({type(obj).__name__})' for name, obj in losses)
            + ' has no class_counts and the run has no training dataset; '
            'not needed to test (its forward raises if called)',
            logger='current')
