# Copyright (c) mmot contributors. All rights reserved.
"""Tests of mmot.ot.costs against direct numpy formulas."""
import numpy as np
import pytest
import torch

from mmot.ot import combined_cost, feature_cost, label_cost


def _rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- #
# label cost
# --------------------------------------------------------------------------- #
def test_label_cost_01_hard():
    r = _rng(0)
    ys, yt = r.integers(0, 5, 12), r.integers(0, 5, 7)
    C = label_cost(torch.from_numpy(ys), torch.from_numpy(yt))
    expected = np.array([[0.0 if ys[i] == yt[j] else 1.0 for j in range(7)]
                         for i in range(12)])
    assert C.shape == (12, 7) and C.dtype == torch.get_default_dtype()
    np.testing.assert_array_equal(C.numpy(), expected)
    assert set(np.unique(C.numpy())) <= {0.0, 1.0}


def test_label_cost_mse_hard_is_2_over_k():
    K = 10
    r = _rng(1)
    ys, yt = r.integers(0, K, 16), np.arange(K)
    C = label_cost(torch.from_numpy(ys), torch.from_numpy(yt), K, mode='mse')
    eye = np.eye(K)
    expected = ((eye[ys][:, None, :] - eye[yt][None, :, :])**2).mean(-1)
    np.testing.assert_allclose(C.numpy(), expected, rtol=1e-6, atol=0)
    off = C.numpy()[ys[:, None] != yt[None, :]]
    np.testing.assert_allclose(off, 2.0 / K, rtol=1e-6)
    assert np.all(C.numpy()[ys[:, None] == yt[None, :]] == 0)


def test_label_cost_soft_and_one_hot():
    K = 6
    r = _rng(2)
    ys, yt = r.integers(0, K, 9), r.integers(0, K, 5)
    oh_s = torch.nn.functional.one_hot(torch.from_numpy(ys), K).double()
    oh_t = torch.nn.functional.one_hot(torch.from_numpy(yt), K).double()
    for mode in ('01', 'mse'):
        hard = label_cost(torch.from_numpy(ys),
                          torch.from_numpy(yt),
                          K,
                          mode=mode,
                          dtype=torch.float64)
        torch.testing.assert_close(label_cost(oh_s, oh_t, mode=mode), hard)
        # mixed int / one-hot
        torch.testing.assert_close(
            label_cost(torch.from_numpy(ys), oh_t, mode=mode), hard)
        torch.testing.assert_close(
            label_cost(oh_s, torch.from_numpy(yt), K, mode=mode), hard)
    # soft labels (e.g. mixup / label smoothing)
    ps = r.dirichlet(np.ones(K), 9)
    pt = r.dirichlet(np.ones(K), 5)
    c01 = label_cost(torch.from_numpy(ps), torch.from_numpy(pt), mode='01')
    np.testing.assert_allclose(c01.numpy(),
                               np.clip(1 - ps @ pt.T, 0, 1),
                               rtol=1e-12)
    cmse = label_cost(torch.from_numpy(ps), torch.from_numpy(pt), mode='mse')
    np.testing.assert_allclose(cmse.numpy(),
                               ((ps[:, None] - pt[None])**2).mean(-1),
                               atol=1e-12)
    assert c01.dtype == torch.float64


def test_label_cost_batched_and_errors():
    y = torch.tensor([[0, 1, 2], [2, 2, 0]])
    yt = torch.tensor([0, 2])
    C = label_cost(y, yt)
    assert C.shape == (2, 3, 2)
    torch.testing.assert_close(C[1], label_cost(y[1], yt))
    with pytest.raises(ValueError, match='num_classes'):
        label_cost(y[0], yt, mode='mse')
    with pytest.raises(ValueError, match='num_classes'):
        label_cost(torch.eye(3), torch.eye(3), num_classes=4)
    with pytest.raises(ValueError, match='mode'):
        label_cost(y[0], yt, mode='l2')


# --------------------------------------------------------------------------- #
# feature cost
# --------------------------------------------------------------------------- #
def test_feature_cost_cosine():
    r = _rng(3)
    zs, zt = r.normal(size=(11, 5)), r.normal(size=(4, 5))
    zt[1] = -2.5 * zs[0]  # antiparallel -> 2
    zt[2] = 3.0 * zs[1]  # parallel -> 0
    C = feature_cost(torch.from_numpy(zs), torch.from_numpy(zt))
    ns = np.linalg.norm(zs, axis=1)[:, None]
    nt = np.linalg.norm(zt, axis=1)[None]
    expected = 1 - zs @ zt.T / (ns * nt)
    np.testing.assert_allclose(C.numpy(), expected, rtol=0, atol=1e-12)
    assert float(C.min()) >= 0 and float(C.max()) <= 2
    assert abs(float(C[0, 1]) - 2) < 1e-12 and abs(float(C[1, 2])) < 1e-12
    # zero vector: cost 1 to everything, no NaN
    z0 = torch.zeros(1, 5, dtype=torch.float64)
    torch.testing.assert_close(feature_cost(z0, torch.from_numpy(zt)),
                               torch.ones(1, 4, dtype=torch.float64))


def test_feature_cost_cosine_range_random_float32():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 16, generator=g)
    C = feature_cost(z, torch.cat([z, -z]))
    assert C.dtype == torch.float32
    assert float(C.min()) >= 0.0 and float(C.max()) <= 2.0
    assert float(C[:, :64].diagonal().abs().max()) < 1e-6
    assert float((C[:, 64:].diagonal() - 2).abs().max()) < 1e-6


@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean'])
def test_feature_cost_euclidean(metric):
    r = _rng(4)
    zs, zt = r.normal(size=(9, 3)), r.normal(size=(6, 3))
    zt[0] = zs[2]
    C = feature_cost(torch.from_numpy(zs), torch.from_numpy(zt), metric)
    d2 = ((zs[:, None] - zt[None])**2).sum(-1)
    expected = np.sqrt(d2) if metric == 'euclidean' else d2
    np.testing.assert_allclose(C.numpy(), expected, rtol=1e-9, atol=1e-9)
    # finite gradients even at zero distance
    a = torch.from_numpy(zs).requires_grad_()
    feature_cost(a, torch.from_numpy(zt), metric).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_feature_cost_batched_and_errors():
    g = torch.Generator().manual_seed(1)
    zs, zt = torch.randn(3, 5, 4, generator=g), torch.randn(7, 4, generator=g)
    C = feature_cost(zs, zt)
    assert C.shape == (3, 5, 7)
    torch.testing.assert_close(C[2], feature_cost(zs[2], zt))
    with pytest.raises(ValueError, match='feature dims'):
        feature_cost(zs, torch.randn(7, 3))
    with pytest.raises(ValueError, match='metric'):
        feature_cost(zs, zt, metric='manhattan')


# --------------------------------------------------------------------------- #
# combined cost
# --------------------------------------------------------------------------- #
def test_combined_cost_coefficients():
    g = torch.Generator().manual_seed(2)
    zs, zt = torch.randn(8, 6, generator=g), torch.randn(5, 6, generator=g)
    ys, yt = torch.randint(0, 5, (8, ), generator=g), torch.arange(5)
    fea = feature_cost(zs, zt)
    # paper Eq. 9: 1 * (1 - cos) + 1 * 0/1
    lab01 = label_cost(ys, yt)
    torch.testing.assert_close(combined_cost(zs, zt, ys, yt), fea + lab01)
    # authors' code: 0.5 * (1 - cos) + 0.5 * mse one-hot distance
    labmse = label_cost(ys, yt, 5, mode='mse')
    torch.testing.assert_close(
        combined_cost(zs,
                      zt,
                      ys,
                      yt,
                      num_classes=5,
                      feat_coef=0.5,
                      label_coef=0.5,
                      label_mode='mse'), 0.5 * fea + 0.5 * labmse)
    np.testing.assert_allclose(
        (0.5 * fea + 0.5 * labmse - 0.5 * fea).numpy(),
        np.where(ys.numpy()[:, None] == yt.numpy()[None], 0, 0.5 * 2 / 5),
        atol=1e-6)
    # a zero coefficient skips the term (its inputs may be None)
    torch.testing.assert_close(
        combined_cost(None, None, ys, yt, label_coef=2.0, feat_coef=0),
        2.0 * lab01)
    torch.testing.assert_close(
        combined_cost(zs,
                      zt,
                      None,
                      None,
                      feat_coef=3.0,
                      label_coef=0,
                      metric='sqeuclidean'),
        3.0 * feature_cost(zs, zt, 'sqeuclidean'))
    with pytest.raises(ValueError, match='y_src'):
        combined_cost(zs, zt, None, yt)
    with pytest.raises(ValueError, match='z_src'):
        combined_cost(None, zt, ys, yt)
    with pytest.raises(ValueError, match='both 0'):
        combined_cost(zs, zt, ys, yt, feat_coef=0, label_coef=0)


def test_combined_cost_dtype_follows_features():
    zs = torch.randn(4, 3, dtype=torch.float64)
    C = combined_cost(zs, zs, torch.tensor([0, 1, 1, 2]),
                      torch.tensor([0, 1, 1, 2]))
    assert C.dtype == torch.float64
    np.testing.assert_allclose(C.diagonal().numpy(), 0.0, atol=1e-12)
