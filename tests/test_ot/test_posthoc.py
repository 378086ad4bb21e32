# Copyright (c) mmot contributors. All rights reserved.
import pickle

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from mmot.evaluation import LongTailMetric, PostHocMetric
from mmot.ot.posthoc import (apply_class_shift, logit_adjust_posthoc,
                             otlm_apply, otlm_fit,
                             otlm_objective, ot_posthoc)

K = 6
COUNTS = [1000, 600, 300, 120, 50, 12]


def _biased(n_per_class=150, seed=0, signal=1.5, dtype=torch.float64):
    """Balanced test set scored by a classifier biased towards head classes:
    logits = class signal + noise + log training prior."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(K).repeat_interleave(n_per_class)
    logits = torch.randn(len(y), K, generator=g, dtype=dtype)
    logits[torch.arange(len(y)), y] += signal
    prior = torch.tensor(COUNTS, dtype=dtype)
    logits = logits + (prior / prior.sum()).log()
    return logits, y


def _bacc(pred, y):
    return LongTailMetric.calculate(pred, y, K)['balanced_acc']


def test_logit_adjust_formula():
    logits, _ = _biased()
    prior = torch.tensor(COUNTS, dtype=torch.float64)
    prior = prior / prior.sum()
    for tau in (0.5, 1.0):
        out = logit_adjust_posthoc(logits, COUNTS, tau=tau)
        torch.testing.assert_close(out, logits - tau * prior.log())
    with pytest.raises(ValueError, match='class_prior'):
        logit_adjust_posthoc(logits, COUNTS[:-1])


def test_ot_matches_pot_and_is_shift_invariant():
    import ot as pot
    logits, _ = _biased(n_per_class=10, seed=1)
    n = logits.size(0)
    reg = 0.7
    res = ot_posthoc(logits, reg=reg, max_iter=2000, tol=1e-12)
    logp = torch.log_softmax(logits, 1)
    ref = pot.sinkhorn(
        np.full(n, 1. / n), np.full(K, 1. / K), (-logp).numpy(), reg,
        numItermax=20000, stopThr=1e-13)
    ref = torch.from_numpy(ref) * n
    ref = ref / ref.sum(1, keepdim=True)
    torch.testing.assert_close(res.pred_score, ref, atol=1e-7, rtol=1e-6)
    # per-row shifts of the logits and probability inputs give the same plan
    shifted = logits + torch.randn(n, 1, dtype=logits.dtype) * 5
    res2 = ot_posthoc(shifted, reg=reg, max_iter=2000, tol=1e-12)
    res3 = ot_posthoc(logits.softmax(1), reg=reg, input_type='probs',
                      max_iter=2000, tol=1e-12)
    torch.testing.assert_close(res2.pred_score, res.pred_score)
    torch.testing.assert_close(res3.pred_score, res.pred_score)
    # the correction is a per-class shift of log p
    assert torch.equal((logp + res.class_shift).argmax(1), res.pred_label)


@pytest.mark.parametrize('target', [None, [3., 1., 1., 1., 2., 2.]])
def test_ot_marginal_matches_target(target):
    logits, y = _biased()
    raw_marginal = logits.softmax(1).mean(0)
    mu = torch.full((K, ), 1. / K, dtype=torch.float64) if target is None \
        else torch.tensor(target, dtype=torch.float64) / sum(target)
    assert (raw_marginal - mu).abs().max() > 0.05  # biased to start with
    res = ot_posthoc(logits, target_marginal=target, reg=0.5)
    torch.testing.assert_close(res.pred_score.sum(1),
                               torch.ones(len(y), dtype=torch.float64))
    torch.testing.assert_close(res.pred_score.mean(0), mu, atol=1e-5,
                               rtol=0)
    assert res.err < 1e-5
    # small reg: the hard predictions are near the target marginal too
    hard = ot_posthoc(logits, target_marginal=target, reg=0.05,
                      max_iter=2000)
    hist = torch.bincount(hard.pred_label, minlength=K).double() / len(y)
    assert (hist - mu).abs().max() < 0.02


def test_ot_and_la_improve_balanced_accuracy():
    logits, y = _biased(seed=3)
    raw = _bacc(logits.argmax(1), y)
    la = _bacc(logit_adjust_posthoc(logits, COUNTS).argmax(1), y)
    ot_res = ot_posthoc(logits, reg=1.0)
    ot_b = _bacc(ot_res.pred_label, y)
    assert la > raw + 5
    assert ot_b > raw + 5
    # the few-shot class (12 images) is recovered
    few_raw = (logits.argmax(1)[y == K - 1] == K - 1).double().mean()
    few_ot = (ot_res.pred_label[y == K - 1] == K - 1).double().mean()
    assert few_ot > few_raw + 0.2


def test_otlm_identity_start_descent_and_gradients():
    logits, y = _biased(n_per_class=40, seed=4)
    # zero steps: W = I, no bias -> plain OT correction
    p0 = otlm_fit(logits, n_iter=0)
    torch.testing.assert_close(p0.weight, torch.eye(K, dtype=logits.dtype))
    torch.testing.assert_close(
        otlm_apply(logits, p0, reg=1.0).pred_score,
        ot_posthoc(logits, reg=1.0).pred_score)
    # the objective (Eq. 12) decreases
    p = otlm_fit(logits, reg=1.0, n_iter=15, lr=1e-2, weight_decay=0.)
    assert p.losses[-1] < p.losses[0] - 1e-3
    assert not torch.allclose(p.weight, torch.eye(K, dtype=logits.dtype))
    res = otlm_apply(logits, p, reg=1.0)
    torch.testing.assert_close(
        res.pred_score.mean(0),
        torch.full((K, ), 1. / K, dtype=torch.float64), atol=1e-5, rtol=0)
    # envelope gradient == gradient through the unrolled Sinkhorn loop
    w = (torch.eye(K, dtype=torch.float64) +
         0.05 * torch.randn(K, K, dtype=torch.float64)).requires_grad_(True)
    grads = []
    for mode in ('envelope', 'autodiff'):
        w.grad = None
        otlm_objective(logits, w, reg=1.0, max_iter=500, tol=1e-12,
                       grad=mode).backward()
        grads.append(w.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-7, rtol=1e-5)
    # fixed bias from the training prior
    pb = otlm_fit(logits, n_iter=0, class_prior=COUNTS, tau=1.0)
    prior = torch.tensor(COUNTS, dtype=torch.float64)
    torch.testing.assert_close(pb.bias, -(prior / prior.sum()).log())
    # mini-batches run
    pm = otlm_fit(logits, n_iter=3, batch_size=64, optimizer='sgd', lr=0.1)
    assert len(pm.losses) == 3
    with pytest.raises(ValueError, match='optimizer'):
        otlm_fit(logits, n_iter=1, optimizer='lbfgs')


def _samples(logits, y):
    probs = logits.float().softmax(1)
    return [
        DataSample().set_gt_label(int(t)).set_pred_score(p)
        for p, t in zip(probs, y)
    ]


def _evaluate(metric, samples, batch=50):
    ev = Evaluator(metric)
    for i in range(0, len(samples), batch):
        ev.process(samples[i:i + batch])
    return ev.evaluate(len(samples))


def test_posthoc_metric_end_to_end(tmp_path):
    logits, y = _biased(seed=5)
    samples = _samples(logits, y)
    # logit adjustment through the metric == direct computation
    res = _evaluate(
        METRICS.build(
            dict(type='PostHocMetric', _scope_='mmpretrain',
                 method='logit_adjust',
                 class_counts=COUNTS, report_raw=True)), samples)
    direct = LongTailMetric.calculate(
        logit_adjust_posthoc(logits, COUNTS).argmax(1), y, K,
        class_counts=COUNTS)
    key = 'posthoc_logit_adjust/long_tail/'
    assert res[key + 'balanced_acc'] == pytest.approx(
        direct['balanced_acc'])
    for bucket in ('many_shot', 'medium_shot', 'few_shot'):
        assert res[key + bucket] == pytest.approx(direct[bucket])
    assert res[key + 'balanced_acc'] > \
        res['posthoc_logit_adjust/raw/long_tail/balanced_acc'] + 5

    # OT: marginal aligned, better than raw
    res = _evaluate(
        PostHocMetric(method='ot', reg=1.0, class_counts=COUNTS,
                      report_raw=True, per_class=True), samples)
    key = 'posthoc_ot/long_tail/'
    assert res[key + 'kl_marginal'] < 1e-8
    assert res['posthoc_ot/raw/long_tail/kl_marginal'] > 1e-2
    assert res[key + 'balanced_acc'] > \
        res['posthoc_ot/raw/long_tail/balanced_acc'] + 5
    assert key + 'acc_class_5' in res
    direct = ot_posthoc(logits.float().softmax(1).log(), reg=1.0)
    assert res[key + 'top1'] == pytest.approx(
        (direct.pred_label == y).double().mean().item() * 100)

    # OTLM, transductive and from a dumped prediction file
    res = _evaluate(
        PostHocMetric(method='otlm', otlm=dict(n_iter=5, lr=1e-2),
                      metrics=[dict(type='LongTailMetric'),
                               dict(type='Accuracy')]), samples)
    assert res['posthoc_otlm/long_tail/kl_marginal'] < 1e-6
    assert res['posthoc_otlm/accuracy/top1'] == pytest.approx(
        res['posthoc_otlm/long_tail/top1'])
    dump = tmp_path / 'val.pkl'
    val_logits, _ = _biased(seed=6)
    with open(dump, 'wb') as f:
        pickle.dump([s.to_dict() for s in _samples(val_logits, y)], f)
    res2 = _evaluate(
        PostHocMetric(method='otlm', otlm=dict(n_iter=5, lr=1e-2),
                      otlm_fit_file=str(dump)), samples)
    assert res2['posthoc_otlm/long_tail/balanced_acc'] > \
        _bacc(logits.argmax(1), y) + 5


def test_posthoc_metric_errors():
    logits, y = _biased(n_per_class=5)
    with pytest.raises(ValueError, match='class_counts'):
        _evaluate(PostHocMetric(method='logit_adjust'), _samples(logits, y))
    with pytest.raises(ValueError, match='method'):
        PostHocMetric(method='darp')
    with pytest.raises(TypeError, match='unexpected'):
        PostHocMetric(method='ot', metrics=[dict(type='Accuracy')],
                      per_class=True)
    with pytest.raises(ValueError, match='otlm'):
        PostHocMetric(method='ot', otlm=dict(n_iter=3))


# ---------------------------------------------------------------------------
# inductive: estimated on held-out predictions, applied to each image alone
# ---------------------------------------------------------------------------
def test_class_shift_on_its_own_set_is_the_transductive_correction():
    logits, _ = _biased(seed=7)
    res = ot_posthoc(logits, reg=0.5, tol=1e-10, max_iter=2000)
    got = apply_class_shift(logits, res.class_shift, reg=0.5)
    torch.testing.assert_close(got, res.pred_score, atol=1e-6, rtol=1e-6)


def test_inductive_ot_corrects_each_image_alone_from_held_out_data():
    held_out, _ = _biased(n_per_class=100, seed=8)  # a balanced meta set
    test, y = _biased(seed=9)
    g = ot_posthoc(held_out, reg=1.0).class_shift
    full = apply_class_shift(test, g)
    # an image's correction does not depend on the other test images
    part = apply_class_shift(test[::7], g)
    torch.testing.assert_close(part, full[::7])
    assert _bacc(full.argmax(1), y) > _bacc(test.argmax(1), y) + 5
    # as good as the transductive correction, which sees the whole test set
    trans = ot_posthoc(test, reg=1.0).pred_label
    assert _bacc(full.argmax(1), y) > _bacc(trans, y) - 3


def test_posthoc_metric_inductive(tmp_path):
    logits, y = _biased(seed=10)
    held_out, y_held = _biased(n_per_class=60, seed=11)
    dump = tmp_path / 'meta.pkl'
    with open(dump, 'wb') as f:
        pickle.dump([s.to_dict() for s in _samples(held_out, y_held)], f)
    raw = _bacc(logits.argmax(1), y)
    for method, kw in (('ot', {}), ('otlm', dict(otlm=dict(n_iter=5,
                                                           lr=1e-2)))):
        metric = PostHocMetric(method=method, fit_file=str(dump), **kw)
        assert not metric.transductive
        res = _evaluate(metric, _samples(logits, y))
        assert res[f'posthoc_{method}/long_tail/balanced_acc'] > raw + 5
        # per image: the first 30 test images alone get the same labels
        part = _evaluate(PostHocMetric(method=method, fit_file=str(dump),
                                       metrics=[dict(type='Accuracy')],
                                       **kw), _samples(logits[:30], y[:30]))
        whole = PostHocMetric(method=method, fit_file=str(dump), **kw)
        lp = logits.float().softmax(1).log()
        full = whole.correct(lp)[:30].argmax(1)
        assert part[f'posthoc_{method}/accuracy/top1'] == pytest.approx(
            (full == y[:30]).double().mean().item() * 100)
    assert PostHocMetric(method='ot').transductive
    assert not PostHocMetric(method='logit_adjust',
                             class_counts=COUNTS).transductive
    with pytest.raises(ValueError, match='no effect'):
        PostHocMetric(method='logit_adjust', fit_file=str(dump))
    with pytest.raises(ValueError, match='not both'):
        PostHocMetric(method='otlm', fit_file=str(dump),
                      otlm_fit_file=str(dump))
    bad = tmp_path / 'bad.pt'
    torch.save(torch.zeros(4, K + 1), bad)
    with pytest.raises(ValueError, match='fit_file'):
        _evaluate(PostHocMetric(method='ot', fit_file=str(bad)),
                  _samples(logits, y))
