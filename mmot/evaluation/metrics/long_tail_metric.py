# Copyright (c) mmot contributors. All rights reserved.
"""Long-tailed recognition metrics."""
import logging
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpretrain.registry import METRICS


def _counts_from_meta(meta: Optional[dict]) -> Optional[List[int]]:
    """Training class counts from a ``dataset_meta`` dict, if any."""
    if not meta:
        return None
    for key in ('train_class_counts', 'class_counts'):
        if meta.get(key) is not None:
            return [int(n) for n in meta[key]]
    return None


def _check_counts(class_counts) -> List[int]:
    """``class_counts`` as a list of ints, or a ValueError."""
    if hasattr(class_counts, 'tolist'):
        class_counts = class_counts.tolist()
    if len(class_counts) == 0 or any(
            n < 0 or not float(n).is_integer() for n in class_counts):
        raise ValueError('LongTailMetric: `class_counts` must be a '
                         'non-empty list of non-negative ints, got '
                         f'{class_counts!r}')
    return [int(n) for n in class_counts]


@METRICS.register_module()
class LongTailMetric(BaseMetric):
    r"""Accuracy metrics for long-tailed recognition, evaluated on a
    (usually balanced) test set.

    Keys (accuracies in percent, like mmpretrain's ``SingleLabelMetric``):

    * ``top1``: overall top-1 accuracy.
    * ``many_shot`` / ``medium_shot`` / ``few_shot``: mean per-class
      accuracy over the classes with more than ``many_shot_thr``, between
      ``few_shot_thr`` and ``many_shot_thr`` (inclusive), and fewer than
      ``few_shot_thr`` *training* images (defaults 100 / 20, the OLTR /
      Decoupling convention). NaN if a bucket has no class with test images
      (e.g. no few-shot class in CIFAR-10-LT with IF=100). Need the training
      class counts: ``class_counts``, else
      ``dataset_meta['train_class_counts']`` or
      ``dataset_meta['class_counts']`` (which must then hold the *training*
      counts); without them these keys are skipped with a
      one-time warning.
    * ``balanced_acc``: mean per-class recall over the classes present in the
      evaluated set (bACC, Huang et al. 2016).
    * ``gmean``: geometric mean of the per-class recalls (GM, Branco et al.
      2016). A single class with zero recall would make it 0 whatever the
      others do, so recalls are floored at ``gmean_floor`` (default
      ``1 / (100 K)``, the convention of the DARP evaluation code whose
      bACC/GM numbers OTLM's Table 5 reports).
    * ``kl_marginal``: :math:`\mathrm{KL}(\bar p \,\|\, \mu)` in nats, between
      the predicted class marginal :math:`\bar p = \frac1N\sum_n p_n` (mean
      of the predicted probability vectors) and the target distribution
      :math:`\mu` (uniform unless ``target_prior`` is given). This is the
      "KL distance between refined probability distribution and target
      distribution" of OTLM (Peng et al., ICLR 2022), Table 4 / Sec. 4.6.
      Only when ``pred_score`` is available.
    * ``kl_marginal_hard``: the same with :math:`\bar p` the histogram of the
      predicted labels (how far the hard predictions are from balanced).
    * ``acc_class_{k}``: per-class accuracy, only if ``per_class=True``
      (NaN for classes without test images).

    Args:
        class_counts (list[int], optional): Training images per class.
            None: filled by :class:`ClassCountsHook` (in mmot's
            ``default_runtime.py``) from the training dataset before the
            run (:meth:`set_class_counts`); give them for a training set
            that is not a :class:`LongTailDataset` if its label histogram
            is not what you want. Defaults to None.
        many_shot_thr (int): Classes with more training images than this are
            many-shot. Defaults to 100.
        few_shot_thr (int): Classes with fewer training images than this are
            few-shot. Defaults to 20.
        per_class (bool): Also return per-class accuracies.
            Defaults to False.
        gmean_floor (float, optional): Floor (fraction, not percent) of the
            per-class recalls in ``gmean``. None = ``1 / (100 K)``.
        target_prior (list[float] | str, optional): Target distribution of
            the KL keys: None = uniform, ``'label'`` = the label distribution
            of the evaluated set, or K non-negative numbers.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix. Defaults to ``'long_tail'``.
    """
    default_prefix: Optional[str] = 'long_tail'

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 many_shot_thr: int = 100,
                 few_shot_thr: int = 20,
                 per_class: bool = False,
                 gmean_floor: Optional[float] = None,
                 target_prior: Union[None, str, Sequence[float]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if class_counts is not None:
            class_counts = _check_counts(class_counts)
        if few_shot_thr > many_shot_thr:
            raise ValueError(
                f'LongTailMetric: `few_shot_thr` ({few_shot_thr}) must be <= '
                f'`many_shot_thr` ({many_shot_thr})')
        if gmean_floor is not None and not 0 < gmean_floor <= 1:
            raise ValueError('LongTailMetric: `gmean_floor` must be in (0, 1]'
                             f', got {gmean_floor}')
        if isinstance(target_prior, str) and target_prior != 'label':
            raise ValueError("LongTailMetric: `target_prior` must be None, "
                             f"'label' or a list, got {target_prior!r}")
        self.class_counts = class_counts
        self.many_shot_thr = many_shot_thr
        self.few_shot_thr = few_shot_thr
        self.per_class = per_class
        self.gmean_floor = gmean_floor
        self.target_prior = target_prior
        self._warned_no_counts = False

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Set the training class counts (validated as in the constructor),
        e.g. from the training dataset by :class:`ClassCountsHook`."""
        self.class_counts = _check_counts(class_counts)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store ``pred_score`` (or ``pred_label``) and ``gt_label``.

        Args:
            data_batch: Unused.
            data_samples (Sequence[dict]): Model outputs.
        """
        for data_sample in data_samples:
            result = dict()
            if 'pred_score' in data_sample:
                result['pred_score'] = data_sample['pred_score'].cpu()
            else:
                result['pred_label'] = data_sample['pred_label'].cpu()
            result['gt_label'] = data_sample['gt_label'].cpu()
            self.results.append(result)

    def _resolve_counts(self) -> Optional[List[int]]:
        if self.class_counts is not None:
            return self.class_counts
        counts = _counts_from_meta(self.dataset_meta)
        if counts is None and not self._warned_no_counts:
            print_log(
                'LongTailMetric: no `class_counts` given and none in '
                'dataset_meta; many/medium/few-shot accuracies are skipped',
                logger='current',
                level=logging.WARNING)
            self._warned_no_counts = True
        return counts

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the metrics from the processed results.

        Args:
            results (list[dict]): The processed results of all batches.

        Returns:
            dict[str, float]: The metrics.
        """
        target = torch.cat([r['gt_label'].view(-1)[:1] for r in results])
        target = target.long()
        scores = None
        if all('pred_score' in r for r in results):
            scores = torch.stack([r['pred_score'].float() for r in results])
            pred = scores.argmax(dim=1)
            num_classes = scores.size(1)
        else:
            pred = torch.cat(
                [r['pred_label'].view(-1)[:1] for r in results]).long()
            num_classes = None
        counts = self._resolve_counts()
        if num_classes is None:
            if counts is not None:
                num_classes = len(counts)
            elif self.dataset_meta and self.dataset_meta.get('classes'):
                num_classes = len(self.dataset_meta['classes'])
            else:
                num_classes = int(max(target.max(), pred.max())) + 1
        if counts is not None and len(counts) != num_classes:
            raise ValueError(
                f'LongTailMetric: `class_counts` has {len(counts)} entries '
                f'but the predictions have {num_classes} classes')
        for name, t in (('gt_label', target), ('pred_label', pred)):
            if int(t.max()) >= num_classes or int(t.min()) < 0:
                raise ValueError(f'LongTailMetric: a {name} is outside '
                                 f'[0, {num_classes})')
        return self.calculate(
            pred,
            target,
            num_classes,
            scores=scores,
            class_counts=counts,
            many_shot_thr=self.many_shot_thr,
            few_shot_thr=self.few_shot_thr,
            per_class=self.per_class,
            gmean_floor=self.gmean_floor,
            target_prior=self.target_prior)

    @staticmethod
    def calculate(pred: torch.Tensor,
                  target: torch.Tensor,
                  num_classes: int,
                  scores: Optional[torch.Tensor] = None,
                  class_counts: Optional[Sequence[int]] = None,
                  many_shot_thr: int = 100,
                  few_shot_thr: int = 20,
                  per_class: bool = False,
                  gmean_floor: Optional[float] = None,
                  target_prior: Union[None, str, Sequence[float]] = None
                  ) -> Dict[str, float]:
        """Compute the metrics from predicted and true labels.

        Args:
            pred (Tensor): (N, ) predicted labels.
            target (Tensor): (N, ) true labels.
            num_classes (int): K.
            scores (Tensor, optional): (N, K) predicted probabilities, for
                ``kl_marginal``.
            Others: see the class docstring.

        Returns:
            dict[str, float]: The metrics.
        """
        k = num_classes
        pred = pred.long().view(-1)
        target = target.long().view(-1)
        correct = pred == target
        total = torch.bincount(target, minlength=k).double()
        hits = torch.bincount(target[correct], minlength=k).double()
        present = total > 0
        recall = torch.full((k, ), float('nan'), dtype=torch.float64)
        recall[present] = hits[present] / total[present]

        metrics = {'top1': correct.double().mean().item() * 100}
        if class_counts is not None:
            cnt = torch.as_tensor(class_counts, dtype=torch.float64)
            buckets = {
                'many_shot': cnt > many_shot_thr,
                'medium_shot': (cnt >= few_shot_thr) & (cnt <= many_shot_thr),
                'few_shot': cnt < few_shot_thr,
            }
            for name, mask in buckets.items():
                sel = mask & present
                metrics[name] = (recall[sel].mean().item() *
                                 100 if sel.any() else float('nan'))
        metrics['balanced_acc'] = recall[present].mean().item() * 100
        floor = gmean_floor if gmean_floor is not None else 1. / (100 * k)
        metrics['gmean'] = math.exp(
            recall[present].clamp_min(floor).log().mean().item()) * 100

        if target_prior is None:
            mu = torch.full((k, ), 1. / k, dtype=torch.float64)
        elif isinstance(target_prior, str):
            mu = total / total.sum()
        else:
            mu = torch.as_tensor(target_prior, dtype=torch.float64).view(-1)
            if mu.numel() != k or (mu < 0).any() or mu.sum() <= 0:
                raise ValueError(
                    'LongTailMetric: `target_prior` must have '
                    f'{k} non-negative entries, got {mu.tolist()}')
            mu = mu / mu.sum()

        def kl(p: torch.Tensor) -> float:
            p = p / p.sum()
            nz = p > 0
            if (mu[nz] == 0).any():
                return float('inf')
            return (p[nz] * (p[nz] / mu[nz]).log()).sum().item()

        if scores is not None:
            probs = scores.double()
            probs = probs / probs.sum(dim=1, keepdim=True)
            metrics['kl_marginal'] = kl(probs.mean(dim=0))
        metrics['kl_marginal_hard'] = kl(
            torch.bincount(pred, minlength=k).double())
        if per_class:
            for j in range(k):
                metrics[f'acc_class_{j}'] = recall[j].item() * 100
        return metrics
