# Copyright (c) mmot contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmpretrain.registry import MODELS
from mmot.models.losses import BalancedSoftmaxLoss, LDAMLoss, LogitAdjustLoss

COUNTS = [500, 120, 40, 7]


def _data(n=12, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * 2
    label = torch.randint(k, (n, ), generator=g)
    return logits, label


def test_balanced_softmax_matches_definition():
    logits, label = _data()
    loss = BalancedSoftmaxLoss(COUNTS)
    log_n = torch.tensor(COUNTS, dtype=torch.float64).log()
    expected = F.cross_entropy(logits + log_n, label)
    torch.testing.assert_close(loss(logits, label), expected)
    # softmax form of BALMS Eqn. 10: n_j e^eta_j / sum_i n_i e^eta_i
    n = torch.tensor(COUNTS, dtype=torch.float64)
    phi = n * logits.exp() / (n * logits.exp()).sum(1, keepdim=True)
    manual = -phi[torch.arange(len(label)), label].log()
    torch.testing.assert_close(
        loss(logits, label, reduction_override='none'), manual)
    # and it is NOT plain cross entropy on imbalanced counts
    assert not torch.allclose(loss(logits, label),
                              F.cross_entropy(logits, label))


def test_logit_adjust_loss_matches_definition():
    logits, label = _data(seed=1)
    prior = torch.tensor(COUNTS, dtype=torch.float64)
    prior = prior / prior.sum()
    for tau in (0.5, 1.0, 2.0):
        loss = LogitAdjustLoss(COUNTS, tau=tau)
        torch.testing.assert_close(
            loss(logits, label),
            F.cross_entropy(logits + tau * prior.log(), label))
    # tau = 1 is Balanced Softmax; tau = 0 is plain CE
    torch.testing.assert_close(
        LogitAdjustLoss(COUNTS, tau=1.0)(logits, label),
        BalancedSoftmaxLoss(COUNTS)(logits, label))
    torch.testing.assert_close(
        LogitAdjustLoss(COUNTS, tau=0.0)(logits, label),
        F.cross_entropy(logits, label))


def test_ldam_margins_and_scale():
    loss = LDAMLoss(COUNTS, max_m=0.5, s=30)
    m = loss.margins.double()
    n = torch.tensor(COUNTS, dtype=torch.float64)
    # m_j = C / n_j^(1/4), largest margin (rarest class) equals max_m
    ratio = m * n.pow(0.25)
    torch.testing.assert_close(ratio, ratio[0].expand_as(ratio))
    assert m.argmax() == n.argmin()
    assert abs(m.max().item() - 0.5) < 1e-6

    cos, label = _data(seed=2)
    cos = cos.tanh()  # cosine-like logits in (-1, 1)
    one_hot = F.one_hot(label, 4).double()
    expected = F.cross_entropy(30 * (cos - m * one_hot), label)
    torch.testing.assert_close(loss(cos, label), expected)
    # the margin only touches the true-class logit: with s=1, max_m tiny,
    # LDAM tends to plain CE
    tiny = LDAMLoss(COUNTS, max_m=1e-9, s=1.)
    torch.testing.assert_close(tiny(cos, label), F.cross_entropy(cos, label))


def test_ldam_class_weight_mmpretrain_convention():
    cos, label = _data(n=10, seed=3)
    cos = cos.tanh()
    w = [0.1, 0.5, 1.0, 2.4]
    loss = LDAMLoss(COUNTS, max_m=0.5, s=10, class_weight=w)
    m = loss.margins.double()
    logits = 10 * (cos - m * F.one_hot(label, 4).double())
    per_sample = F.cross_entropy(logits, label, reduction='none')
    wt = torch.tensor(w, dtype=torch.float64)[label]
    # weighted per-sample losses averaged over avg_factor (here N)
    torch.testing.assert_close(
        loss(cos, label, avg_factor=10), (per_sample * wt).sum() / 10)
    # class_weight set later (as DRWHook does) takes effect
    loss2 = LDAMLoss(COUNTS, max_m=0.5, s=10)
    assert not torch.allclose(loss2(cos, label), loss(cos, label))
    loss2.class_weight = w
    torch.testing.assert_close(loss2(cos, label), loss(cos, label))
    with pytest.raises(ValueError, match='class_weight'):
        loss2.class_weight = [1., 2.]


@pytest.mark.parametrize('cls', [BalancedSoftmaxLoss, LDAMLoss,
                                 LogitAdjustLoss])
def test_sample_weight_avg_factor_reduction(cls):
    logits, label = _data(n=8, seed=4)
    loss = cls(COUNTS)
    per_sample = loss(logits, label, reduction_override='none')
    assert per_sample.shape == (8, )
    torch.testing.assert_close(loss(logits, label), per_sample.mean())
    torch.testing.assert_close(
        loss(logits, label, reduction_override='sum'), per_sample.sum())
    w = torch.tensor([0., 1., 2., 0.5, 1., 0., 3., 1.])
    torch.testing.assert_close(
        loss(logits, label, weight=w, avg_factor=5.),
        (per_sample * w).sum() / 5.)
    torch.testing.assert_close(
        loss(logits, label, weight=w), (per_sample * w).mean())
    # loss_weight scales
    torch.testing.assert_close(
        cls(COUNTS, loss_weight=3.)(logits, label), 3 * per_sample.mean())
    # one-hot soft labels == hard labels
    torch.testing.assert_close(
        loss(logits, F.one_hot(label, 4).double(), reduction_override='none'),
        per_sample)
    # gradient flows
    x = logits.clone().requires_grad_(True)
    loss(x, label).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # no state in checkpoints
    assert len(loss.state_dict()) == 0


@pytest.mark.parametrize('cls', [BalancedSoftmaxLoss, LDAMLoss,
                                 LogitAdjustLoss])
def test_class_counts_validation(cls):
    for bad in ([10, 0, 3], [10, -1], [], [1.5, 2]):
        with pytest.raises(ValueError, match='class_counts'):
            cls(bad)
        # set later (ClassCountsHook): validated the same way
        with pytest.raises(ValueError, match='class_counts'):
            cls().set_class_counts(bad)
    with pytest.raises(ValueError, match='class_counts'):
        cls().set_class_counts(None)
    loss = cls([10, 5, 1])
    logits, label = _data(n=4, k=4)
    with pytest.raises(ValueError, match='class_counts'):
        loss(logits, label.clamp_max(2))


@pytest.mark.parametrize('cls', [BalancedSoftmaxLoss, LDAMLoss,
                                 LogitAdjustLoss])
def test_class_counts_set_later(cls):
    """class_counts=None builds; the forward refuses to run until
    set_class_counts, after which the loss equals one built with them."""
    logits, label = _data()
    later = cls()
    assert later.class_counts is None
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        later(logits, label)
    later.set_class_counts(torch.tensor(COUNTS))  # a tensor, as the hook's
    assert later.class_counts == COUNTS
    torch.testing.assert_close(later(logits, label), cls(COUNTS)(logits,
                                                               label))
    assert len(later.state_dict()) == 0  # still no state in checkpoints
    # a class_weight given with the loss is checked against the counts
    if cls is not BalancedSoftmaxLoss:
        with pytest.raises(ValueError, match='class_weight'):
            cls(class_weight=[1., 2.]).set_class_counts(COUNTS)


def test_registered_and_in_head():
    loss = MODELS.build(dict(type='BalancedSoftmaxLoss', _scope_='mmpretrain',
             class_counts=COUNTS))
    assert isinstance(loss, BalancedSoftmaxLoss)
    assert isinstance(
        MODELS.build(
            dict(type='LDAMLoss', _scope_='mmpretrain',
                 class_counts=COUNTS)), LDAMLoss)
    assert isinstance(
        MODELS.build(
            dict(type='LogitAdjustLoss', _scope_='mmpretrain',
                 class_counts=COUNTS)),
        LogitAdjustLoss)
    from mmpretrain.structures import DataSample
    head = MODELS.build(
        dict(
            type='LinearClsHead',
            _scope_='mmpretrain',
            num_classes=4,
            in_channels=3,
            loss=dict(type='BalancedSoftmaxLoss', _scope_='mmpretrain',
             class_counts=COUNTS)))
    feats = (torch.randn(6, 3), )
    labels = [0, 1, 2, 3, 3, 1]
    samples = [DataSample().set_gt_label(y) for y in labels]
    out = head.loss(feats, samples)
    logits = head(feats)
    expected = F.cross_entropy(
        logits + torch.tensor(COUNTS).float().log(), torch.tensor(labels))
    torch.testing.assert_close(out['loss'], expected)
