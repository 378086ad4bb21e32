"""TwoStageLR and MetaSetSampler, the registered stage-2 components, alone."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.optim.scheduler import MultiStepLR

import mmot  # noqa: F401
from mmot.datasets.samplers.meta_set_sampler import MetaSetSampler
from mmot.engine.schedulers import TwoStageLR
from mmpretrain.registry import DATA_SAMPLERS, PARAM_SCHEDULERS


def _optim(momentum=0.9):
    net = torch.nn.Linear(3, 2)
    # two groups, as paramwise_cfg makes them: the bias at 2x the base lr
    opt = torch.optim.SGD([dict(params=[net.weight]),
                           dict(params=[net.bias], lr=0.2)], lr=0.1,
                          momentum=momentum)
    return net, OptimWrapper(opt)


def _lrs(wrapper):
    return [g['lr'] for g in wrapper.optimizer.param_groups]


def _train_epoch(net, wrapper):
    wrapper.update_params(net(torch.ones(4, 3)).sum())


def test_two_stage_lr_keeps_ratios_and_ends_stage1():
    net, ow = _optim()
    stage1 = MultiStepLR(ow, milestones=[1, 3], gamma=0.1, by_epoch=True)
    ours = PARAM_SCHEDULERS.build(
        dict(type='TwoStageLR', lr=1e-3, begin=2),
        default_args=dict(optimizer=ow))
    TwoStageLR.end_stage1([stage1, ours], epoch_length=5)
    assert stage1.end == 2  # the milestone at 3 is in stage 2: never fires
    seen = []
    for _ in range(5):
        seen.append(_lrs(ow))
        _train_epoch(net, ow)
        stage1.step()
        ours.step()
    assert seen[0] == [0.1, 0.2]
    assert seen[1] == pytest.approx([0.01, 0.02])  # the user's schedule
    for lrs in seen[2:]:  # the absolute alpha, ratio 1:2 kept
        assert lrs == pytest.approx([1e-3, 2e-3])


def test_two_stage_lr_iterations_end_epoch_schedulers():
    _, ow = _optim()
    stage1 = MultiStepLR(ow, milestones=[4], by_epoch=True)
    ours = TwoStageLR(ow, lr=1e-3, begin=25, by_epoch=False)
    TwoStageLR.end_stage1([stage1, ours], epoch_length=10)
    assert stage1.end == 3  # ceil(25 / 10): epoch 3 holds iteration 25


def test_two_stage_lr_resume_at_any_step_equals_uninterrupted():
    ref_net, ref = _optim()
    ref_s = TwoStageLR(ref, lr=1e-3, begin=3, sgd=dict(momentum=0.5))
    values = []
    for _ in range(6):
        values.append(_lrs(ref))
        _train_epoch(ref_net, ref)
        ref_s.step()
    for k in range(6):
        net, ow = _optim()
        s = TwoStageLR(ow, lr=1e-3, begin=3, sgd=dict(momentum=0.5))
        for _ in range(k):
            _train_epoch(net, ow)
            s.step()
        state, opt_state = s.state_dict(), ow.optimizer.state_dict()
        net2, ow2 = _optim()
        net2.load_state_dict(net.state_dict())
        s2 = TwoStageLR(ow2, lr=1e-3, begin=3, sgd=dict(momentum=0.5))
        s2.load_state_dict(state)
        ow2.optimizer.load_state_dict(opt_state)
        got = []
        for _ in range(k, 6):
            got.append(_lrs(ow2))
            _train_epoch(net2, ow2)
            s2.step()
        assert len(got) == 6 - k
        for a, b in zip(got, values[k:]):
            assert a == pytest.approx(b), k


def test_two_stage_lr_fresh_sgd_at_t1():
    net, ow = _optim(momentum=0.9)
    s = TwoStageLR(ow, lr=1e-3, begin=2,
                   sgd=dict(momentum=0.8, nesterov=True, weight_decay=5e-4))
    for epoch in range(3):
        _train_epoch(net, ow)
        state = ow.optimizer.state
        if epoch == 0:
            assert all('momentum_buffer' in state[p] for p in net.parameters())
        s.step()
        if epoch == 1:  # the switch: settings on, momentum buffers gone
            assert not ow.optimizer.state
    for g in ow.optimizer.param_groups:
        assert g['momentum'] == 0.8 and g['nesterov'] and \
            g['weight_decay'] == 5e-4


@pytest.mark.parametrize('kw, match', [
    (dict(lr=0.0, begin=1), 'TwoStageLR.stage2_lr must be > 0'),
    (dict(lr=1e-3, begin=-1), r'TwoStageLR.begin \(t1\) must be an int'),
    (dict(lr=1e-3, begin=1, sgd=dict(lr=1.0)), 'stage2_sgd must be a dict'),
])
def test_two_stage_lr_bad_input(kw, match):
    _, ow = _optim()
    with pytest.raises(ValueError, match=match):
        TwoStageLR(ow, **kw)


class _Labels:
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return [self.labels[i]]


def test_meta_set_sampler_whole_set_in_order():
    ds = _Labels([0, 1, 2, 0, 1, 2])
    s = DATA_SAMPLERS.build(dict(type='MetaSetSampler'),
                            default_args=dict(dataset=ds, seed=None))
    assert list(s) == list(range(6)) and len(s) == 6


def test_meta_set_sampler_per_class_seeded_and_dynamic():
    labels = [k for k in range(3) for _ in range(7)]
    ds = _Labels(labels)
    fixed = MetaSetSampler(ds, per_class=2, seed=5)
    draw = list(fixed)
    assert len(draw) == len(fixed) == 6
    assert [labels[i] for i in draw] == [0, 0, 1, 1, 2, 2]
    fixed.set_epoch(3)
    assert list(fixed) == draw  # not dynamic: the same draw every epoch
    dyn = MetaSetSampler(ds, per_class=2, seed=5, dynamic=True)
    draws = []
    for epoch in range(4):
        dyn.set_epoch(epoch)
        draws.append(list(dyn))
    assert draws[0] == draw and len({tuple(d) for d in draws}) > 1
    # the draw of epoch e: randperm of each class's indices, seed*100003+e
    g = torch.Generator().manual_seed(5 * 100003 + 2)
    exp = []
    for k in range(3):
        idx = torch.arange(7 * k, 7 * k + 7)
        exp += idx[torch.randperm(7, generator=g)[:2]].tolist()
    assert draws[2] == exp


@pytest.mark.parametrize('kw, match', [
    (dict(per_class=0), 'MetaSetSampler.per_class must be an int >= 1'),
    (dict(dynamic=True), 'MetaSetSampler.dynamic=True needs per_class'),
    (dict(per_class=8), 'per_class=8 but class 0 has only 7 images'),
])
def test_meta_set_sampler_bad_input(kw, match):
    ds = _Labels([k for k in range(3) for _ in range(7)])
    with pytest.raises(ValueError, match=match):
        MetaSetSampler(ds, **kw)
