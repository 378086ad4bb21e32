# Copyright (c) mmot contributors. All rights reserved.
"""OT re-weighting over the whole training set (GlobalWeightVector,
mmot.ot.global_ot): the streamed solver against POT, the label-cost optimum
(class balance) on the CIFAR-10-LT IF100 labels, unseen examples, bad
inputs, resume = uninterrupted and DDP = single process."""
import copy
import os.path as osp
import sys

import ot
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import load_checkpoint

import mmot  # noqa: F401
from mmot.datasets.long_tail_dataset import long_tail_counts
from mmot.models.costs import LabelCost
from mmot.models.weight_learners import GlobalWeightVector
from mmot.ot.global_ot import global_ot
from mmot.ot.reweighter import OTReweighter
from mmpretrain.registry import HOOKS, MODELS

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TESTS)
from _runner_utils import (ROOT, build, demo_cfg, dist_train,  # noqa: E402
                           ot_model, pre_logits)

GLOBAL = dict(type='GlobalWeightVector', lr=1.0)


def global_cfg(work_dir, **kw):
    """The digits demo with the global learner (replacing, not merging
    into, the demo's WeightVector arguments)."""
    cfg = demo_cfg(work_dir, **kw)
    cfg.model.reweighter['learner'] = copy.deepcopy(GLOBAL)
    return cfg


# ---------------------------------------------------------------------------
# the solver
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('n,m,block,cache', [(60, 5, 7, True),
                                              (60, 5, 1000, False),
                                              (33, 12, 4, False)])
def test_global_ot_value_and_gradient_match_pot(n, m, block, cache):
    g = torch.Generator().manual_seed(n + m)
    C = torch.rand(n, m, generator=g, dtype=torch.float64) * 2
    a = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    a /= a.sum()
    b = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
    b /= b.sum()
    calls = []

    def cost_block(s, e):
        calls.append((s, e))
        return C[s:e]

    res = global_ot(a, b, cost_block, 0.1, max_iter=5000, tol=1e-12,
                    block_rows=block, cache_bytes=2**20 if cache else 0)
    a_pot = a.clone().requires_grad_()
    v = ot.sinkhorn2(a_pot, b, C, 0.1, numItermax=20000, stopThr=1e-14,
                     method='sinkhorn_log')
    v.backward()
    g_pot = a_pot.grad - a_pot.grad.mean()
    assert abs(float(res.value) - float(v.detach())) < 1e-9
    torch.testing.assert_close(res.grad_a, g_pot, rtol=0, atol=1e-8)
    assert res.err <= 1e-12
    n_blocks = -(-n // block)
    if cache:  # in memory: the cost is computed once
        assert len(calls) == n_blocks
    else:  # streamed: recomputed each pass
        assert len(calls) > n_blocks


def test_global_ot_newton_on_class_clustered_costs():
    """Features clustered by class, class masses far from Q's: plain
    Sinkhorn crawls (classes couple through exp(-1/reg) kernel entries);
    the Newton steps converge, to POT's value and gradient."""
    from mmot.ot import combined_cost
    g = torch.Generator().manual_seed(3)
    counts = [300, 120, 50, 20, 10]
    y = torch.cat([torch.full((n, ), k) for k, n in enumerate(counts)])
    zq = torch.randn(5, 16, generator=g, dtype=torch.float64)
    z = zq[y] + 0.3 * torch.randn(len(y), 16, generator=g,
                                  dtype=torch.float64)
    C = combined_cost(z, zq, y, torch.arange(5))
    a = torch.full((len(y), ), 1.0 / len(y), dtype=torch.float64)
    b = torch.full((5, ), 0.2, dtype=torch.float64)
    plain = global_ot(a, b, lambda s, e: C[s:e], 0.1, max_iter=5000,
                      tol=1e-9, newton_after=5000)
    res = global_ot(a, b, lambda s, e: C[s:e], 0.1, max_iter=200, tol=1e-9,
                    block_rows=128)
    assert res.err <= 1e-9 and 3 * res.n_iter < plain.n_iter
    assert abs(float(res.value - plain.value)) < 1e-8
    a_pot = a.clone().requires_grad_()
    v = ot.sinkhorn2(a_pot, b, C, 0.1, numItermax=200000, stopThr=1e-12,
                     method='sinkhorn_log')
    v.backward()
    assert abs(float(res.value) - float(v.detach())) < 1e-8
    torch.testing.assert_close(res.grad_a, a_pot.grad - a_pot.grad.mean(),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize('halvings', [0, 30])
def test_global_ot_newton_failure_hands_back_to_sinkhorn(monkeypatch,
                                                         halvings):
    """Weakly coupled class blocks make the first Newton step overshoot by
    orders of magnitude. Whether the damped steps converge (30 halvings:
    to the dense solver's value) or Newton gives up at once (0: Sinkhorn
    goes on to max_iter), the reported error is the true one: the plan's
    row and column marginals (formed densely here) are within it. (A hand-back that left the rows
    balanced and the columns not once stopped the loop at a false error 0
    with a row error of 0.03.)"""
    from mmot.ot import combined_cost, sinkhorn_log, solver
    monkeypatch.setattr(solver, 'MAX_HALVINGS', halvings)
    g = torch.Generator().manual_seed(0)
    zq = torch.randn(10, 64, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (500, ), generator=g)
    z = zq[y] + 0.7 * torch.randn(500, 64, generator=g, dtype=torch.float64)
    C = combined_cost(z, zq, y, torch.arange(10))
    a = torch.full((500, ), 1.0 / 500, dtype=torch.float64)
    b = torch.full((10, ), 0.1, dtype=torch.float64)
    res = global_ot(a, b, lambda s, e: C[s:e], 0.1, max_iter=3000, tol=1e-7,
                    block_rows=256)
    T = torch.exp((res.f[:, None] + res.g[None] - C) / 0.1)
    row = float((T.sum(1) - a).abs().sum())
    col = float((T.sum(0) - b).abs().sum())
    assert max(row, col) <= 1.01 * res.err + 1e-14
    if halvings == 0:  # Sinkhorn alone crawls here: honest, not converged
        assert res.n_iter == 3000 and res.err > 1e-7
        return
    assert res.err <= 1e-7
    ref = sinkhorn_log(a, b, C, 0.1, max_iter=200000, tol=1e-11,
                       method='log')
    assert abs(float(res.value) - float((ref.plan * C).sum())) < 1e-5


def test_global_ot_regularised_objective_matches_entropic_ot():
    """objective='regularised': <T,C> - reg H(T) and its gradient (the
    potential), against mmot's entropic_ot with autograd through the
    iterations, and POT's sinkhorn2 for the transport part of the plan."""
    from mmot.ot import entropic_ot
    g = torch.Generator().manual_seed(7)
    C = torch.rand(50, 6, generator=g, dtype=torch.float64) * 2
    a = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    a /= a.sum()
    b = torch.full((6, ), 1 / 6, dtype=torch.float64)
    res = global_ot(a, b, lambda s, e: C[s:e], 0.1, max_iter=500, tol=1e-12,
                    block_rows=16, cache_bytes=0, objective='regularised')
    a_ref = a.clone().requires_grad_()
    ref = entropic_ot(a_ref, b, C, 0.1, max_iter=5000, tol=1e-13,
                      grad='autodiff')
    ref.backward()
    assert abs(float(res.value) - float(ref.detach())) < 1e-9
    torch.testing.assert_close(res.grad_a, a_ref.grad - a_ref.grad.mean(),
                               rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match='objective'):
        global_ot(a, b, lambda s, e: C[s:e], 0.1, objective='entropy')


def test_global_ot_float32_and_errors():
    g = torch.Generator().manual_seed(0)
    C = torch.rand(40, 6, generator=g)
    a = torch.full((40, ), 1 / 40)
    b = torch.full((6, ), 1 / 6)
    r32 = global_ot(a, b, lambda s, e: C[s:e], 0.1, block_rows=16)
    r64 = global_ot(a.double(), b.double(), lambda s, e: C[s:e].double(),
                    0.1, block_rows=16)
    assert r32.grad_a.dtype == torch.float32
    assert abs(float(r32.value - r64.value)) < 1e-5
    with pytest.raises(ValueError, match='block_rows'):
        global_ot(a, b, lambda s, e: C[s:e], 0.1, block_rows=0)
    with pytest.raises(ValueError, match='shape'):
        global_ot(a, b, lambda s, e: C[s:e, :3], 0.1)
    with pytest.raises(ValueError, match='shape'):
        global_ot(a, b, lambda s, e: C[s:e, :3], 0.1, cache_bytes=0)


# ---------------------------------------------------------------------------
# the learner
# ---------------------------------------------------------------------------
def _cifar_learner(**kw):
    counts = long_tail_counts(4990, 10, 100)  # CIFAR-10-LT IF100
    labels = torch.cat([torch.full((n, ), k) for k, n in enumerate(counts)])
    learner = GlobalWeightVector(**kw)
    learner.build(len(labels), labels, torch.tensor(counts), 8)
    return learner, labels, counts


def test_global_label_cost_optimum_is_class_balance():
    learner, labels, counts = _cifar_learner(lr=1.0)
    assert len(labels) == 12380 and counts[0] == 4990 and counts[9] == 49
    learner._write_bank(torch.arange(len(labels)),
                        torch.randn(len(labels), 8))
    support = (torch.randn(10, 8), torch.arange(10))
    cost = LabelCost(mode='01')
    start = learner.class_mass()
    torch.testing.assert_close(
        start, torch.tensor(counts, dtype=torch.float64) / len(labels))
    for _ in range(60):
        learner.global_step(support, cost, 10, 0.1, 200, 1e-6)
    mass = learner.class_mass()
    assert (mass - 0.1).abs().max() < 1e-4
    assert float(mass.sum()) == pytest.approx(1.0, abs=1e-12)
    # the label cost does not tell the examples of a class apart
    for k in range(10):
        wk = learner.w[labels == k]
        assert float(wk.max() - wk.min()) < 1e-12 * float(wk.max()) + 1e-18
    # loss weights: N w_i / B; class 9 now weighs ~ 4990 / 49 x class 0
    a = learner.measure(torch.tensor([0, 12379]), None) * 2
    assert float(a[1] / a[0]) == pytest.approx(4990 / 49, rel=1e-3)


def test_global_unseen_examples_keep_their_weight():
    learner, labels, _ = _cifar_learner(lr=1.0)
    n = len(labels)
    seen = torch.arange(0, n, 2)
    learner._write_bank(seen, torch.randn(len(seen), 8))
    support = (torch.randn(10, 8), torch.arange(10))
    for _ in range(5):
        learner.global_step(support, LabelCost(mode='01'), 10, 0.1, 200,
                            1e-6)
    unseen = torch.arange(1, n, 2)
    assert torch.all(learner.w[unseen] == 1.0 / n)
    # an unseen example's loss weight is 1 (the mean loss), never NaN
    batch = torch.tensor([1, 3, 5, 7])
    assert torch.equal(learner.measure(batch, None) * 4, torch.ones(4))
    assert torch.isfinite(learner.w).all()
    assert float(learner.w.sum()) == pytest.approx(1.0, abs=1e-12)


def test_global_reweighter_batch_weights():
    learner, labels, _ = _cifar_learner(lr=0.5, interval=2)
    # Q: two meta points of class 0, two of class 9; the bank: three
    # examples of class 0, one of class 9
    rw = OTReweighter(learner, LabelCost(mode='01'), 10, meta_mode='whole')
    rw.set_meta(torch.randn(4, 8), torch.tensor([0, 0, 9, 9]))
    idx = torch.tensor([0, 1, 2, 12379])
    z = torch.randn(4, 8)
    w1, s1 = rw(z, labels[idx], idx)
    assert float(s1['ot_stepped']) == 0  # interval 2: no step yet
    torch.testing.assert_close(w1, torch.full((4, ), 0.25))
    w2, s2 = rw(z, labels[idx], idx)
    assert float(s2['ot_stepped']) == 1 and torch.isfinite(s2['ot_dist'])
    # the tail example gained weight, the head ones lost some
    assert float(w2[3]) > 0.25 > float(w2[0])
    # the batch weights are N w_i / B
    torch.testing.assert_close(w2, (learner.w[idx] * 12380 / 4).float())


@pytest.mark.parametrize('kw, match', [
    (dict(interval=0), r'GlobalWeightVector\.interval must be an int >= 1'),
    (dict(block_rows=0), r'GlobalWeightVector\.block_rows must be'),
    (dict(max_iter=0), r'GlobalWeightVector\.max_iter must be'),
    (dict(cache_bytes=-1), r'GlobalWeightVector\.cache_bytes must be'),
    (dict(lr=-1.0), r'GlobalWeightVector\.lr must be >= 0'),
    (dict(objective='kl'), r'GlobalWeightVector\.objective must be'),
])
def test_global_bad_inputs(kw, match):
    cfg = global_cfg('/tmp', max_epochs=2, start_epoch=1)
    cfg.model.reweighter.learner.update(kw)
    with pytest.raises(ValueError,
                       match=r'model\.reweighter\.learner: ' + match):
        MODELS.build(cfg.model)


def test_global_bad_num_prototypes(tmp_path):
    cfg = global_cfg(tmp_path, max_epochs=2, start_epoch=1,
                     meta_mode='stochastic_prototype', num_prototypes=0)
    with pytest.raises(ValueError, match='num_prototypes must be'):
        build(cfg)


# ---------------------------------------------------------------------------
# in the Runner: resume and DDP
# ---------------------------------------------------------------------------
def test_global_two_stage_run_and_resume_equals_uninterrupted(tmp_path):
    kw = dict(max_epochs=4, start_epoch=1,
              meta_mode='stochastic_prototype', num_prototypes=6)
    ref = build(global_cfg(tmp_path / 'ref', **kw))
    ref.train()
    learner = ot_model(ref).reweighter.learner
    assert bool(learner.filled[learner.in_train].all())
    w_ref = learner.w.clone()
    assert not torch.allclose(w_ref[learner.in_train],
                              w_ref[learner.in_train][0])

    crash = tmp_path / 'crash'
    cfg = global_cfg(crash, **kw)
    cfg.custom_hooks.append(dict(type='StopAfterEpoch', epoch=2))
    with pytest.raises(KeyboardInterrupt):
        build(cfg).train()
    cfg = global_cfg(crash, **kw)
    cfg.resume = True
    resumed = build(cfg)
    resumed.train()
    got = ot_model(resumed).reweighter.learner
    assert torch.equal(got.w, w_ref)
    assert torch.equal(got.bank, learner.bank)
    assert torch.equal(got.step_lr, learner.step_lr)
    for k, v in ref.model.state_dict().items():  # the OT state included
        assert torch.equal(v, resumed.model.state_dict()[k]), k


@HOOKS.register_module(force=True)
class RecordGlobalHook(Hook):
    """Saves, per rank, every stage-2 batch and the final bank and w."""
    priority = 'LOWEST'

    def __init__(self):
        self.batches = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        hook = [h for h in runner.hooks
                if type(h).__name__ == 'OTReweightHook'][0]
        if not hook.active:
            return
        samples = data_batch['data_samples']
        self.batches.append(dict(
            inputs=torch.stack(list(data_batch['inputs'])).clone(),
            idx=torch.tensor([int(s.sample_idx) for s in samples])))

    def after_train(self, runner):
        hook = [h for h in runner.hooks
                if type(h).__name__ == 'OTReweightHook'][0]
        rw = ot_model(runner).reweighter
        torch.save(dict(batches=self.batches, w=rw.learner.w.clone(),
                        bank=rw.learner.bank.clone(),
                        protos=rw.support()[0].clone()),
                   osp.join(runner.work_dir, f'global_rank{runner.rank}.pt'))


def test_global_ddp_matches_single_process(tmp_path):
    cfg = global_cfg(tmp_path, max_epochs=2, start_epoch=1)
    cfg.custom_imports = dict(imports=['mmot', 'test_global_ot'],
                              allow_failed_imports=False)
    cfg.custom_hooks.append(dict(type='RecordGlobalHook'))
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    proc = dist_train(TESTS, cfg_file, 2, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    recs = [torch.load(tmp_path / f'global_rank{r}.pt', weights_only=True)
            for r in range(2)]
    # the ranks agree
    assert torch.equal(recs[0]['w'], recs[1]['w'])
    assert torch.equal(recs[0]['bank'], recs[1]['bank'])
    # single-process replay: both ranks' batches into one bank, one step
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, str(tmp_path / 'epoch_1.pth'), map_location='cpu',
                    strict=True)
    model.eval()
    rw = MODELS.build(copy.deepcopy(model_cfg)).reweighter
    ck = torch.load(tmp_path / 'epoch_2.pth', map_location='cpu',
                    weights_only=True)
    lt_labels = ck['state_dict']['reweighter.learner.labels']
    learner = rw.learner
    learner.build(len(lt_labels), lt_labels, None, model.head.in_channels)
    k = model.head.num_classes
    protos = recs[0]['protos']
    for t in range(len(recs[0]['batches'])):
        idx = torch.cat([r['batches'][t]['idx'] for r in recs])
        with torch.no_grad():
            z = torch.cat([pre_logits(model, r['batches'][t]['inputs'])
                           for r in recs])
        learner._write_bank(idx, z)
        learner.global_step((protos, torch.arange(k)), rw.cost, k, rw.reg,
                            rw.max_iter, rw.tol)
    torch.testing.assert_close(learner.bank, recs[0]['bank'], rtol=0,
                               atol=1e-5)
    torch.testing.assert_close(learner.w, recs[0]['w'], rtol=1e-5,
                               atol=1e-9)
