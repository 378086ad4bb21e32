"""bfloat16 autocast training on the CPU: BF16AmpOptimWrapper, and the OT
step staying float32 inside it."""
import warnings

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmot  # noqa: F401
from mmot.models.costs import CombinedCost
from mmot.models.weight_learners import WeightVector
from mmot.ot.reweighter import OTReweighter
from _runner_utils import build, demo_cfg, ot_model


def test_wrapper_autocasts_forward_and_keeps_float32_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ow = build_optim_wrapper(model, dict(
            type='BF16AmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32, ))
    before = [p.detach().clone() for p in model.parameters()]
    with ow.optim_context(model):
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
    assert out.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    ow.update_params(loss)
    for p, b in zip(model.parameters(), before):
        assert p.dtype == torch.float32 and not torch.equal(p, b)
    # outside the context: float32 again
    assert model(x).dtype == torch.float32


def _reweighter():
    torch.manual_seed(0)
    n, k = 40, 4
    labels = torch.arange(n) % k
    learner = WeightVector(lr=1.0)
    learner.build(n, labels, torch.bincount(labels), 6)
    rw = OTReweighter(learner, CombinedCost(), k)
    rw.set_meta(torch.randn(12, 6), torch.arange(12) % k)
    return rw, labels


def test_ot_step_is_float32_under_autocast():
    rw1, labels = _reweighter()
    rw2, _ = _reweighter()
    z = torch.randn(8, 6)
    idx = torch.arange(8) * 3
    w1, s1 = rw1(z, labels[idx], idx)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        w2, s2 = rw2(z.bfloat16(), labels[idx], idx)
    assert w2.dtype == torch.float32
    # only the bfloat16 rounding of the features differs
    torch.testing.assert_close(w2, w1, atol=2e-3, rtol=0)
    torch.testing.assert_close(rw2.learner.weights, rw1.learner.weights,
                               atol=2e-3, rtol=0)


def test_demo_trains_with_bf16(tmp_path):
    cfg = demo_cfg(tmp_path, max_epochs=2, start_epoch=1)
    cfg.optim_wrapper.type = 'BF16AmpOptimWrapper'
    runner = build(cfg)
    runner.train()
    w = ot_model(runner).reweighter.learner.weights.detach()
    assert w.dtype == torch.float32 and torch.isfinite(w).all()
    assert not torch.allclose(w, torch.ones_like(w))  # stage 2 stepped
    for p in runner.model.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()


@pytest.mark.parametrize('native', [False, True])
def test_wrapper_warns_once_where_bf16_is_not_native(monkeypatch, native):
    from mmot.engine.optim_wrappers import bf16_optim_wrapper as mod
    monkeypatch.setattr(mod, 'cpu_has_native_bf16', lambda: native)
    monkeypatch.setattr(mod.BF16AmpOptimWrapper, '_warned', False)
    model = nn.Linear(4, 2)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ow = build_optim_wrapper(model, dict(
            type='BF16AmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    if not native:
        with pytest.warns(UserWarning, match='no native bfloat16'):
            with ow.optim_context(model):
                assert model(torch.randn(3, 4)).dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # never where native, once otherwise
        with ow.optim_context(model):
            assert model(torch.randn(3, 4)).dtype == torch.bfloat16


def test_cpu_bf16_probe_matches_torch():
    from mmot.engine.optim_wrappers import bf16_is_fast, cpu_has_native_bf16
    native = cpu_has_native_bf16()
    assert native == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert bf16_is_fast('cpu') == native
    assert bf16_is_fast('cuda') == (torch.cuda.is_available()
                                    and torch.cuda.is_bf16_supported())
