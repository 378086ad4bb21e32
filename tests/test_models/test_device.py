"""Stage 2 runs wherever the model runs: the re-weighting state is module
state (buffers, or parameters outside autograd), so ``model.to(device or
dtype)``, ``state_dict``, EMA copies and the Runner carry it.

On a CPU-only machine the device moves go to torch's ``meta`` device (every
tensor that stays behind is still on the CPU, so the walk finds it); the
same runs on CUDA are the ``cuda``-marked tests at the end (skipped without
a GPU; ``tools/gpu_smoke.sh`` runs them)."""
import copy
import io

import pytest
import torch
from mmengine.hooks import EMAHook

from mmot.models.classifiers.ot_image_classifier import OTImageClassifier
from mmpretrain.registry import MODELS

from _runner_utils import DEMO_AUTHORS, build, demo_cfg, ot_model

pytestmark = pytest.mark.usefixtures('one_thread_module')

# the stage-2 variants: the paper's text, the authors' recipe (meta CE on
# meta images kept between iterations), the whole-training-set learner, a
# weight net (parameters built at set-up), a random Q (its draw counter)
VARIANTS = {
    'paper': dict(),
    'authors': dict(config=DEMO_AUTHORS),
    'global': dict(learner=dict(type='GlobalWeightVector', lr=0.5)),
    'weight_net': dict(learner=dict(type='WeightNet', hidden_dim=8, lr=0.1)),
    'random_q': dict(meta_mode='random'),
}


def stage2_runner(work_dir, variant, **kw):
    """Stage 1 for one epoch, then one epoch of stage 2, trained."""
    ot = copy.deepcopy(VARIANTS[variant])
    config = ot.pop('config', None)
    cfg = demo_cfg(work_dir, max_epochs=2, start_epoch=1, **ot, **kw) \
        if config is None else demo_cfg(work_dir, max_epochs=2,
                                        start_epoch=1, config=config, **kw)
    if 'learner' in ot:  # replace, not merge into, the demo's learner
        cfg.model.reweighter['learner'] = ot['learner']
    runner = build(cfg)
    runner.train()
    return runner


def reachable_tensors(obj):
    """Every tensor reachable from ``obj``: a module's parameters, buffers,
    submodules and attributes (private ones too), and the containers and
    mmot objects (e.g. the feature cache) they hold. (name, tensor)."""
    found, seen = [], set()

    def walk(o, path, depth):
        if id(o) in seen or depth > 12:
            return
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            found.append((path, o))
            return
        if isinstance(o, (torch.optim.Optimizer, torch.Generator)):
            return
        if isinstance(o, torch.nn.Module) or (
                type(o).__module__.startswith('mmot')
                and hasattr(o, '__dict__')):
            items = vars(o).items()
        elif isinstance(o, dict):
            items = o.items()
        elif isinstance(o, (list, tuple)):
            items = enumerate(o)
        else:
            return
        for k, v in list(items):
            walk(v, f'{path}.{k}', depth + 1)

    walk(obj, 'model', 0)
    return found


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_stage2_model_to_meta_device_leaves_no_tensor(tmp_path, variant):
    runner = stage2_runner(tmp_path, variant)
    model = ot_model(runner)
    assert model.ot_active and model.reweighter.meta_ready
    names = [n for n, _ in reachable_tensors(model)]
    assert any('reweighter' in n and 'learner' in n for n in names)
    model.to('meta')
    left = [f'{n} {tuple(t.shape)} {t.device}'
            for n, t in reachable_tensors(model) if t.device.type != 'meta']
    assert not left, left


@pytest.mark.parametrize('variant', ['paper', 'authors'])
def test_stage2_model_dtype_move_device(tmp_path, variant):
    """``model.double()`` in stage 2 carries the OT state (and the cached
    meta CE inputs) to float64, and the next stage-2 step runs in it."""
    runner = stage2_runner(tmp_path, variant)
    model = ot_model(runner).double()
    floats = [(n, t.dtype) for n, t in reachable_tensors(model)
              if t.is_floating_point()]
    assert floats and all(d == torch.float64 for _, d in floats), [
        f for f in floats if f[1] != torch.float64]
    batch = next(iter(runner.train_dataloader))
    data = model.data_preprocessor(batch, True)
    before = model.reweighter.learner.weights.clone()
    losses = model.loss(data['inputs'].double(), data['data_samples'])
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert model.reweighter.learner.weights.dtype == torch.float64
    assert not torch.equal(model.reweighter.learner.weights, before)


@pytest.mark.parametrize('variant', ['paper', 'weight_net', 'global'])
def test_device_runner_optimizer_never_holds_ot_state(tmp_path, variant):
    """The Runner's optimiser (and so DDP's reduction) never sees a tensor
    of the re-weighter; its learner moved them itself."""
    runner = stage2_runner(tmp_path, variant)
    rw = ot_model(runner).reweighter
    ot_ids = {id(t) for t in list(rw.parameters()) + list(rw.buffers())}
    opt_ids = {id(p) for g in runner.optim_wrapper.optimizer.param_groups
               for p in g['params']}
    assert ot_ids and not ot_ids & opt_ids
    assert not any(p.requires_grad for p in rw.parameters())
    learner = rw.learner
    if variant == 'weight_net':
        fresh = MODELS.build(dict(type='WeightNet', hidden_dim=8, lr=0.1))
        assert len(list(learner.parameters())) == 4 and len(
            list(fresh.parameters())) == 0  # built at set-up
        assert any(b.abs().sum() > 0 for n, b in learner.named_buffers()
                   if n.endswith('_momentum'))  # its own SGD stepped
    elif variant == 'global':
        assert float(learner.w.std()) > 0
    else:
        assert not torch.equal(learner.weights, torch.ones_like(
            learner.weights))


@pytest.mark.parametrize('update_buffers', [False, True])
def test_ema_hook_carries_ot_state(tmp_path, update_buffers):
    """mmengine's EMAHook (in dozens of mmpretrain configs) pairs the model
    with its averaged copy tensor by tensor: the OT state is sized before
    it copies the model and never changes shape, so stage 2 runs. With the
    default ``update_buffers=False`` the copy carries the live OT state
    (buffers are copied, not averaged)."""
    cfg = demo_cfg(tmp_path, max_epochs=2, start_epoch=1)
    cfg.custom_hooks = [dict(type='EMAHook', momentum=0.1,
                             update_buffers=update_buffers,
                             priority='ABOVE_NORMAL')]
    runner = build(cfg)
    runner.train()
    ema = [h for h in runner.hooks if isinstance(h, EMAHook)][0]
    live = ot_model(runner)
    copy_ = ema.ema_model.module
    assert isinstance(copy_, OTImageClassifier)
    w, w_ema = live.reweighter.learner.weights, \
        copy_.reweighter.learner.weights
    assert not torch.equal(w, torch.ones_like(w))  # stage 2 moved them
    if not update_buffers:
        assert torch.equal(w_ema, w)
        assert torch.equal(copy_.reweighter.meta_feats,
                           live.reweighter.meta_feats)
    assert not torch.equal(copy_.head.fc.weight, live.head.fc.weight)


def _old_blob(state):
    """The ``_extra_state`` blob earlier mmot versions wrote for a state
    dict of today's (one uint8 tensor)."""
    pre = 'reweighter.learner.'
    learner = {k[len(pre):]: v for k, v in state.items()
               if k.startswith(pre) and not k.endswith('_momentum')}
    old = dict(
        reweighter=dict(
            learner=dict(params=learner, optimizer=dict(state={0: dict(
                momentum_buffer=state[pre + 'weights_momentum'])},
                param_groups=[])),
            generator=torch.Generator().get_state(),
            meta_feats=state['reweighter.meta_feats'],
            meta_labels=state['reweighter.meta_labels']),
        meta_epoch=int(state['meta_epoch_']))
    buf = io.BytesIO()
    torch.save(old, buf)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def test_old_serialised_checkpoint_loads_or_says_what_to_do(tmp_path):
    runner = stage2_runner(tmp_path, 'paper')
    live = ot_model(runner)
    state = {k: v.clone() for k, v in live.state_dict().items()}
    old = {k: v for k, v in state.items()
           if not (k.startswith('reweighter.') or k == 'meta_epoch_')}
    old['_extra_state'] = _old_blob(state)
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.setdefault('data_preprocessor', runner.cfg.data_preprocessor)
    fresh = MODELS.build(cfg)  # unsized, as in tools/test.py
    fresh.load_state_dict(old, strict=False)
    got = fresh.state_dict()
    for k in ('reweighter.learner.weights', 'reweighter.learner.'
              'weights_momentum', 'reweighter.meta_feats',
              'reweighter.meta_labels', 'meta_epoch_'):
        assert torch.equal(got[k], state[k]), k
    broken = dict(old, _extra_state=torch.zeros(10, dtype=torch.uint8))
    with pytest.raises(ValueError, match='start stage 2 again'):
        MODELS.build(cfg).load_state_dict(broken, strict=False)


# ---------------------------------------------------------------------------
# on a GPU (tools/gpu_smoke.sh): the Runner puts the model on CUDA itself
# ---------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_cuda_stage2(tmp_path, variant):
    runner = stage2_runner(tmp_path, variant)
    model = ot_model(runner)
    assert model.ot_active
    off = [n for n, t in reachable_tensors(model) if t.device.type != 'cuda']
    assert not off, off
    assert torch.isfinite(runner.message_hub.get_scalar(
        'train/ot_dist').current())
