# Copyright (c) mmot contributors. All rights reserved.
import math

import pytest
import torch
from mmengine.evaluator import Evaluator

from mmpretrain.evaluation import Accuracy
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from mmot.evaluation import LongTailMetric

# class 0: many (>100), classes 1, 2: medium (20..100), class 3: few (<20)
COUNTS = [200, 100, 20, 5]


def _hand_made():
    """16 test samples, 4 per class; per-class recalls 1, 1/2, 1/4, 0."""
    gt = [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    pred = [0, 0, 0, 0,  # class 0: 4/4
            1, 1, 0, 0,  # class 1: 2/4
            2, 0, 0, 1,  # class 2: 1/4
            0, 0, 1, 2]  # class 3: 0/4
    return torch.tensor(pred), torch.tensor(gt)


def _scores_for(pred, k=4, p=0.7):
    scores = torch.full((len(pred), k), (1 - p) / (k - 1))
    scores[torch.arange(len(pred)), pred] = p
    return scores


def _run(metric, scores, gt):
    samples = [
        DataSample().set_gt_label(int(y)).set_pred_score(s)
        for s, y in zip(scores, gt)
    ]
    ev = Evaluator(metric)
    ev.process(samples)
    return ev.evaluate(len(samples))


def test_hand_made_values():
    pred, gt = _hand_made()
    scores = _scores_for(pred)
    res = _run(LongTailMetric(class_counts=COUNTS), scores, gt)
    assert res['long_tail/top1'] == pytest.approx(7 / 16 * 100)
    assert res['long_tail/many_shot'] == pytest.approx(100.)
    assert res['long_tail/medium_shot'] == pytest.approx((50 + 25) / 2)
    assert res['long_tail/few_shot'] == pytest.approx(0.)
    assert res['long_tail/balanced_acc'] == pytest.approx(
        (100 + 50 + 25 + 0) / 4)
    # zero recall floored at 1 / (100 K) = 0.0025
    gm = (1 * 0.5 * 0.25 * 0.0025)**0.25 * 100
    assert res['long_tail/gmean'] == pytest.approx(gm)
    # KL(mean predicted distribution || uniform), by hand:
    # predicted labels: 0 x10, 1 x4, 2 x2, 3 x0
    counts = torch.bincount(pred, minlength=4).double()
    assert counts.tolist() == [10., 4., 2., 0.]
    pbar = (counts * 0.7 + (16 - counts) * 0.1) / 16
    kl = sum(p * math.log(p / 0.25) for p in pbar.tolist())
    assert res['long_tail/kl_marginal'] == pytest.approx(kl, rel=1e-5)
    h = counts / 16
    kl_hard = sum(p * math.log(p / 0.25) for p in h.tolist() if p > 0)
    assert res['long_tail/kl_marginal_hard'] == pytest.approx(kl_hard)
    assert not any('acc_class' in k for k in res)


def test_top1_and_balanced_acc_on_imbalanced_test_set():
    from sklearn.metrics import balanced_accuracy_score
    g = torch.Generator().manual_seed(0)
    gt = torch.cat([torch.zeros(60), torch.ones(25), torch.full((15, ), 2.)
                    ]).long()
    scores = torch.rand(100, 3, generator=g)
    scores[torch.arange(100), gt] += 0.4 * torch.rand(100, generator=g)
    scores = scores / scores.sum(1, keepdim=True)
    res = _run(LongTailMetric(), scores, gt)
    acc = _run(Accuracy(), scores, gt)
    assert res['long_tail/top1'] == pytest.approx(acc['accuracy/top1'])
    bacc = balanced_accuracy_score(gt.numpy(), scores.argmax(1).numpy())
    assert res['long_tail/balanced_acc'] == pytest.approx(bacc * 100)
    assert res['long_tail/top1'] != pytest.approx(
        res['long_tail/balanced_acc'])
    # no class counts -> no bucket keys
    assert 'long_tail/many_shot' not in res
    # label target prior: KL of the true label marginal against itself = 0
    perfect = torch.nn.functional.one_hot(gt, 3).float()
    res2 = _run(LongTailMetric(target_prior='label'), perfect, gt)
    assert res2['long_tail/kl_marginal'] == pytest.approx(0., abs=1e-12)
    res3 = _run(LongTailMetric(), perfect, gt)
    assert res3['long_tail/kl_marginal'] > 0.05


def test_thresholds_boundaries_and_per_class():
    pred, gt = _hand_made()
    out = LongTailMetric.calculate(
        pred, gt, 4, class_counts=[101, 100, 20, 19], per_class=True)
    assert out['many_shot'] == pytest.approx(100.)
    assert out['medium_shot'] == pytest.approx(37.5)
    assert out['few_shot'] == pytest.approx(0.)
    assert [out[f'acc_class_{k}'] for k in range(4)] == pytest.approx(
        [100., 50., 25., 0.])
    # custom thresholds move classes between buckets
    out = LongTailMetric.calculate(
        pred, gt, 4, class_counts=[101, 100, 20, 19], many_shot_thr=50,
        few_shot_thr=50)
    assert out['many_shot'] == pytest.approx((100 + 50) / 2)
    assert out['few_shot'] == pytest.approx((25 + 0) / 2)
    assert math.isnan(out['medium_shot'])
    # custom floor for gmean
    out = LongTailMetric.calculate(pred, gt, 4, gmean_floor=0.01)
    assert out['gmean'] == pytest.approx((0.5 * 0.25 * 0.01)**0.25 * 100)


def test_counts_from_dataset_meta_and_pred_label_only():
    pred, gt = _hand_made()
    metric = METRICS.build(
        dict(type='LongTailMetric', _scope_='mmpretrain'))
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'),
                               train_class_counts=COUNTS)
    samples = [
        dict(
            pred_label=torch.tensor([int(p)]),
            gt_label=torch.tensor([int(y)]))
        for p, y in zip(pred, gt)
    ]
    metric.process(None, samples)
    res = metric.compute_metrics(metric.results)
    assert res['few_shot'] == pytest.approx(0.)
    assert res['medium_shot'] == pytest.approx(37.5)
    assert 'kl_marginal' not in res  # no scores -> only the hard version
    assert 'kl_marginal_hard' in res


def test_counts_set_later():
    """class_counts=None filled by set_class_counts (ClassCountsHook),
    validated as in the constructor; PostHocMetric passes them on to its
    wrapped LongTailMetric."""
    from mmot.evaluation import PostHocMetric
    pred, gt = _hand_made()
    metric = LongTailMetric()
    assert metric.class_counts is None
    metric.set_class_counts(torch.tensor(COUNTS))
    assert metric.class_counts == COUNTS
    later = _run(metric, _scores_for(pred), gt)
    given = _run(LongTailMetric(class_counts=COUNTS), _scores_for(pred), gt)
    assert later == given and 'long_tail/few_shot' in later
    with pytest.raises(ValueError, match='class_counts'):
        LongTailMetric().set_class_counts([10, -1])
    posthoc = PostHocMetric(method='logit_adjust')
    assert posthoc.class_counts is None
    assert posthoc.metrics[0].class_counts is None
    posthoc.set_class_counts(COUNTS)
    assert posthoc.class_counts == COUNTS
    assert posthoc.metrics[0].class_counts == COUNTS
    res = _run(posthoc, _scores_for(pred), gt)
    assert 'posthoc_logit_adjust/long_tail/few_shot' in res


def test_errors():
    pred, gt = _hand_made()
    with pytest.raises(ValueError, match='class_counts'):
        _run(LongTailMetric(class_counts=[10, 10, 10]), _scores_for(pred), gt)
    with pytest.raises(ValueError, match='class_counts'):
        LongTailMetric(class_counts=[10, -1])
    with pytest.raises(ValueError, match='few_shot_thr'):
        LongTailMetric(many_shot_thr=10, few_shot_thr=20)
