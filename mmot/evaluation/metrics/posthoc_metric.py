# Copyright (c) mmot contributors. All rights reserved.
"""Evaluate other metrics after a post-hoc correction of the predictions."""
import copy
import logging
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpretrain.registry import METRICS
from mmot.ot.posthoc import (apply_class_shift, logit_adjust_posthoc,
                             normalize_prior, ot_posthoc, otlm_apply,
                             otlm_fit, otlm_map)
from .long_tail_metric import LongTailMetric, _counts_from_meta  # noqa: F401

_METHODS = ('logit_adjust', 'ot', 'otlm')
_OTLM_KEYS = ('n_iter', 'lr', 'weight_decay', 'optimizer', 'momentum',
              'batch_size', 'use_prior_bias', 'grad', 'seed', 'max_iter',
              'tol', 'check_every', 'reg')


def _scores_from_file(path: str) -> torch.Tensor:
    """(N, K) log-probabilities from a dumped prediction file.

    ``.pkl``/``.pickle``: the list of data-sample dicts written by
    ``tools/test.py --out`` (mmengine ``DumpResults``), each with
    ``pred_score``; ``.pt``/``.pth``: a (N, K) tensor of logits or a dict
    with ``'logits'`` or ``'pred_score'``.
    """
    if path.endswith(('.pkl', '.pickle')):
        from mmengine.fileio import load
        data = load(path)
        if not isinstance(data, list) or not data or 'pred_score' not in \
                data[0]:
            raise ValueError(f'PostHocMetric: {path} must be a list of '
                             'dicts with `pred_score` (as dumped by '
                             'tools/test.py --out)')
        probs = torch.stack(
            [torch.as_tensor(d['pred_score']).float() for d in data])
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    if path.endswith(('.pt', '.pth')):
        data = torch.load(path, map_location='cpu')
        if isinstance(data, dict):
            if 'logits' in data:
                return torch.as_tensor(data['logits']).float()
            if 'pred_score' in data:
                probs = torch.as_tensor(data['pred_score']).float()
                return torch.log(
                    probs.clamp_min(torch.finfo(probs.dtype).tiny))
            raise ValueError(f'PostHocMetric: {path} is a dict without '
                             "'logits' or 'pred_score'")
        return torch.as_tensor(data).float()
    raise ValueError('PostHocMetric: a predictions file must end with .pkl, '
                     f'.pickle, .pt or .pth, got {path}')


@METRICS.register_module()
class PostHocMetric(BaseMetric):
    """Post-hoc correction of the predictions of the whole evaluated set,
    followed by other metrics on the corrected predictions.

    ``process`` stores ``pred_score`` and ``gt_label`` of every sample; at
    ``compute_metrics`` (rank 0, after all ranks' results are gathered) the
    (N, K) prediction matrix is corrected with ``method``:

    * ``'logit_adjust'``: :func:`mmot.ot.posthoc.logit_adjust_posthoc`,
      ``log p - tau * log pi`` with ``pi`` the training class distribution
      (from ``class_counts``).
    * ``'ot'``: :func:`mmot.ot.posthoc.ot_posthoc`, the OT correction of
      Peng et al. (ICLR 2022, Eq. (11)) towards ``target_prior`` (uniform by
      default) with ``reg`` = lambda.
    * ``'otlm'``: :func:`mmot.ot.posthoc.otlm_fit` then
      :func:`~mmot.ot.posthoc.otlm_apply` (Eq. (12)). ``W`` is fitted without
      labels on the predictions in ``otlm_fit_file`` (e.g. a validation set
      dumped by ``tools/test.py --out val.pkl``) or, if None, on the
      evaluated predictions themselves.

    ``'ot'`` and ``'otlm'`` as above are **transductive**: the OT step
    needs the whole evaluated set and assumes its class marginal (uniform:
    the balanced test set). With ``fit_file`` they are **inductive**: the
    correction (OTLM's ``W`` and the OT class shift ``g``) is estimated on
    the held-out predictions in ``fit_file`` (the meta set or a validation
    split carved from training, dumped by ``tools/test.py --out``), and each
    evaluated image is corrected alone,
    :func:`~mmot.ot.posthoc.apply_class_shift`. ``'logit_adjust'`` is
    inductive as it is.

    mmpretrain data samples carry ``pred_score = softmax(logits)``;
    ``log(pred_score)`` equals the logits up to a per-row constant, which
    changes neither the logit adjustment nor the OT plan (see
    :mod:`mmot.ot.posthoc`); OTLM is fitted and applied on ``log p``.

    The corrected samples (``pred_score`` = corrected probabilities,
    ``pred_label`` = their argmax) are fed to every metric in ``metrics``
    (default: one :class:`LongTailMetric`), whose keys are returned as
    ``{metric prefix}/{key}``; this metric's own prefix (default
    ``posthoc_{method}``) is prepended by mmengine. With ``report_raw=True``
    the wrapped metrics are also computed on the uncorrected predictions,
    under ``raw/``.

    Usage, e.g. ``test_evaluator = dict(type='PostHocMetric', method='ot',
    reg=1.0, class_counts=[...])``, or on the command line of
    ``tools/test.py`` over a config whose ``test_evaluator`` is a
    ``LongTailMetric``: ``--cfg-options test_evaluator.type=PostHocMetric
    test_evaluator.method=ot`` (extra keyword arguments such as
    ``per_class`` are forwarded to the default ``LongTailMetric``).

    Args:
        method (str): ``'logit_adjust'``, ``'ot'`` or ``'otlm'``.
        metrics (dict | list[dict], optional): Configs of the wrapped
            metrics. ``class_counts`` is filled into ``LongTailMetric``
            configs that lack it. Defaults to
            ``[dict(type='LongTailMetric')]``.
        class_counts (list[int], optional): Training images per class: the
            prior of ``logit_adjust`` (and of OTLM's optional bias) and the
            many/medium/few buckets. None: filled by :class:`ClassCountsHook`
            (in mmot's ``default_runtime.py``) from the training dataset
            before the run (:meth:`set_class_counts`, also into the wrapped
            ``LongTailMetric`` s that lack them); without the hook, the
            ``dataset_meta`` keys ``train_class_counts`` / ``class_counts``.
        tau (float): Logit-adjustment strength. Defaults to 1.0.
        reg (float): Entropic regularisation lambda of ``ot`` / ``otlm``.
            Defaults to 1.0.
        target_prior (list[float], optional): Target class distribution of
            ``ot`` / ``otlm``; None = uniform. Defaults to None.
        max_iter (int): Sinkhorn iterations (paper's T). Defaults to 200.
        tol (float): Sinkhorn L1 marginal tolerance. Defaults to 1e-6.
        otlm (dict, optional): Options of :func:`~mmot.ot.posthoc.otlm_fit`
            (``n_iter``, ``lr``, ``weight_decay``, ``optimizer``,
            ``momentum``, ``batch_size``, ``grad``, ``seed``; ``reg``,
            ``max_iter``, ``tol`` override the ones above for fitting) and
            ``use_prior_bias`` (absorb ``-tau log p(y_s)`` as fixed bias).
        otlm_fit_file (str, optional): Predictions to fit OTLM's ``W`` on
            (the OT step stays on the evaluated set).
        fit_file (str, optional): Held-out predictions to estimate the whole
            correction on (inductive ``'ot'`` / ``'otlm'``, see above).
        report_raw (bool): Also report the uncorrected metrics.
            Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix. Defaults to ``posthoc_{method}``.
        **metric_kwargs: Forwarded to the default ``LongTailMetric`` (only
            when ``metrics`` is None).
    """
    default_prefix: Optional[str] = 'posthoc'

    def __init__(self,
                 method: str,
                 metrics: Union[dict, Sequence[dict], None] = None,
                 class_counts: Optional[Sequence[int]] = None,
                 tau: float = 1.0,
                 reg: float = 1.0,
                 target_prior: Optional[Sequence[float]] = None,
                 max_iter: int = 200,
                 tol: float = 1e-6,
                 otlm: Optional[dict] = None,
                 otlm_fit_file: Optional[str] = None,
                 fit_file: Optional[str] = None,
                 report_raw: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **metric_kwargs) -> None:
        if method not in _METHODS:
            raise ValueError(f'PostHocMetric: `method` must be one of '
                             f'{_METHODS}, got {method!r}')
        super().__init__(
            collect_device=collect_device,
            prefix=prefix if prefix is not None else f'posthoc_{method}')
        if not reg > 0:
            raise ValueError(f'PostHocMetric: `reg` must be > 0, got {reg}')
        otlm = dict(otlm or {})
        bad = set(otlm) - set(_OTLM_KEYS)
        if bad:
            raise ValueError(f'PostHocMetric: unknown `otlm` keys '
                             f'{sorted(bad)}; allowed: {list(_OTLM_KEYS)}')
        if method != 'otlm' and (otlm or otlm_fit_file):
            raise ValueError('PostHocMetric: `otlm` / `otlm_fit_file` only '
                             "apply to method='otlm'")
        if fit_file is not None and method == 'logit_adjust':
            raise ValueError("PostHocMetric: `fit_file` has no effect with "
                             "method='logit_adjust' (it corrects each image "
                             'alone already)')
        if fit_file is not None and otlm_fit_file is not None:
            raise ValueError('PostHocMetric: give `fit_file` (inductive) or '
                             '`otlm_fit_file`, not both')
        if class_counts is not None:
            if hasattr(class_counts, 'tolist'):
                class_counts = class_counts.tolist()
            class_counts = [int(n) for n in class_counts]
        if metrics is None:
            metrics = [dict(type='LongTailMetric', **metric_kwargs)]
        elif metric_kwargs:
            raise TypeError(
                'PostHocMetric: unexpected arguments '
                f'{sorted(metric_kwargs)} (extra arguments are only forwarded '
                'to the default LongTailMetric when `metrics` is None)')
        if isinstance(metrics, dict):
            metrics = [metrics]
        self.metrics = []
        for cfg in metrics:
            if isinstance(cfg, BaseMetric):
                self.metrics.append(cfg)
                continue
            cfg = copy.deepcopy(dict(cfg))
            if cfg.get('type') in ('LongTailMetric', LongTailMetric) and \
                    cfg.get('class_counts') is None:
                cfg['class_counts'] = class_counts
            # look the wrapped metric up in mmpretrain's registry whatever
            # the current default scope is
            cfg.setdefault('_scope_', 'mmpretrain')
            self.metrics.append(METRICS.build(cfg))
        self.method = method
        self.class_counts = class_counts
        self.tau = tau
        self.reg = reg
        self.target_prior = target_prior
        self.max_iter = max_iter
        self.tol = tol
        self.otlm = otlm
        self.otlm_fit_file = otlm_fit_file
        self.fit_file = fit_file
        self.report_raw = report_raw

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Set the training class counts, here and in the wrapped metrics
        that lack them (e.g. from the training dataset by
        :class:`ClassCountsHook`)."""
        if hasattr(class_counts, 'tolist'):
            class_counts = class_counts.tolist()
        self.class_counts = [int(n) for n in class_counts]
        for metric in self.metrics:
            if getattr(metric, 'class_counts', 0) is None and hasattr(
                    metric, 'set_class_counts'):
                metric.set_class_counts(self.class_counts)

    @property
    def transductive(self) -> bool:
        """Whether the correction needs the whole evaluated set."""
        return self.method != 'logit_adjust' and self.fit_file is None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store ``pred_score`` and ``gt_label`` of every sample.

        Args:
            data_batch: Unused.
            data_samples (Sequence[dict]): Model outputs.
        """
        for data_sample in data_samples:
            if 'pred_score' not in data_sample:
                raise KeyError('PostHocMetric needs `pred_score` in the data '
                               'samples (post-hoc corrections act on scores)')
            self.results.append(
                dict(
                    pred_score=data_sample['pred_score'].cpu(),
                    gt_label=data_sample['gt_label'].cpu()))

    def _prior(self, num_classes: int, required: bool):
        counts = self.class_counts
        if counts is None:
            counts = _counts_from_meta(self.dataset_meta)
        if counts is None:
            if required:
                raise ValueError(
                    f"PostHocMetric(method='{self.method}') needs the "
                    'training class distribution: pass `class_counts`, keep '
                    'ClassCountsHook in default_hooks (it reads them from the '
                    "training dataset), or put 'train_class_counts' in the "
                    'test dataset metainfo')
            return None
        if len(counts) != num_classes:
            raise ValueError(
                f'PostHocMetric: `class_counts` has {len(counts)} entries but '
                f'the predictions have {num_classes} classes')
        return counts

    def correct(self, log_probs: torch.Tensor) -> torch.Tensor:
        """Apply the configured correction.

        Args:
            log_probs (Tensor): (N, K) log-probabilities (or logits) of the
                whole evaluated set.

        Returns:
            Tensor: (N, K) corrected probabilities.
        """
        k = log_probs.size(1)
        if self.method == 'logit_adjust':
            prior = self._prior(k, required=True)
            adjusted = logit_adjust_posthoc(log_probs, prior, self.tau)
            return torch.softmax(adjusted, dim=1)
        target = None if self.target_prior is None else normalize_prior(
            self.target_prior, k, 'target_prior', log_probs.dtype)
        if self.fit_file is not None:
            return self._correct_inductive(log_probs, target)
        if self.method == 'ot':
            res = ot_posthoc(log_probs, target, self.reg, 'logits',
                             self.max_iter, self.tol)
        else:
            fit_logits = log_probs if self.otlm_fit_file is None else \
                self._held_out(self.otlm_fit_file, 'otlm_fit_file', k)
            params = self._fit_otlm(fit_logits, target, k)
            res = otlm_apply(log_probs, params, target, self.reg,
                             self.max_iter, self.tol)
        self._check_converged(res)
        return res.pred_score

    def _correct_inductive(self, log_probs, target) -> torch.Tensor:
        """The correction estimated on ``fit_file``, applied per image."""
        held_out = self._held_out(self.fit_file, 'fit_file',
                                  log_probs.size(1))
        params = None
        if self.method == 'otlm':
            params = self._fit_otlm(held_out, target, log_probs.size(1))
            held_out = otlm_map(held_out, params)
            log_probs = otlm_map(log_probs, params)
        res = ot_posthoc(held_out, target, self.reg, 'logits', self.max_iter,
                         self.tol)
        self._check_converged(res)
        return apply_class_shift(log_probs, res.class_shift, self.reg)

    @staticmethod
    def _held_out(path: str, key: str, k: int) -> torch.Tensor:
        scores = _scores_from_file(path)
        if scores.dim() != 2 or scores.size(1) != k:
            raise ValueError(
                f'PostHocMetric: `{key}` has predictions of shape '
                f'{tuple(scores.shape)}, expected (M, {k})')
        return scores

    def _fit_otlm(self, fit_logits, target, k):
        cfg = dict(self.otlm)
        use_bias = cfg.pop('use_prior_bias', False)
        fit_kwargs = dict(reg=self.reg, max_iter=self.max_iter, tol=self.tol)
        fit_kwargs.update(cfg)
        if use_bias:
            fit_kwargs['class_prior'] = self._prior(k, required=True)
            fit_kwargs['tau'] = self.tau
        params = otlm_fit(fit_logits, target, **fit_kwargs)
        if params.losses:
            print_log(
                f'PostHocMetric: OTLM objective {params.losses[0]:.5f} '
                f'-> {params.losses[-1]:.5f} in {len(params.losses)} steps',
                logger='current')
        return params

    @staticmethod
    def _check_converged(res) -> None:
        if res.err > 1e-3:
            print_log(
                f'PostHocMetric: Sinkhorn stopped after {res.n_iter} '
                f'iterations with marginal error {res.err:.2e}; consider a '
                'larger `max_iter` or `reg`',
                logger='current',
                level=logging.WARNING)

    def _evaluate_wrapped(self, scores: torch.Tensor,
                          labels: List[torch.Tensor]) -> Dict[str, float]:
        pred_labels = scores.argmax(dim=1)
        samples = [
            dict(
                pred_score=scores[i],
                pred_label=pred_labels[i:i + 1],
                gt_label=labels[i]) for i in range(scores.size(0))
        ]
        out = {}
        for metric in self.metrics:
            metric.dataset_meta = self.dataset_meta
            metric.results.clear()
            metric.process(None, samples)
            values = metric.compute_metrics(metric.results)
            metric.results.clear()
            for key, value in values.items():
                name = f'{metric.prefix}/{key}' if metric.prefix else key
                out[name] = value
        return out

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Correct the whole set's predictions and evaluate the wrapped
        metrics on them.

        Args:
            results (list[dict]): Gathered ``pred_score`` / ``gt_label``.

        Returns:
            dict[str, float]: The wrapped metrics' values.
        """
        probs = torch.stack([r['pred_score'].float() for r in results])
        labels = [r['gt_label'] for r in results]
        log_probs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
        corrected = self.correct(log_probs).float()
        out = self._evaluate_wrapped(corrected, labels)
        if self.report_raw:
            raw = self._evaluate_wrapped(probs, labels)
            out.update({f'raw/{k}': v for k, v in raw.items()})
        return out
