# Copyright (c) mmot contributors. All rights reserved.
"""Bad configs and inputs give the errors documented in docs/errors.md.

The table under docs/errors.md's "Bad inputs" heading is the source of truth: every row has an
id, and :func:`test_bad_input` (parametrized over :data:`CASES`, one entry
per row) triggers the row's bad input and asserts the row's error text. In
that text ``<tmp>`` stands for the test's temporary directory and ``…`` for
text left out (upstream messages that vary between versions);
:func:`test_table_and_cases_agree` checks that the table and :data:`CASES`
list the same rows.

Cheap paths are used where they raise the same error as a full run: the
hook or dataset built from its config, or ``OTReweightHook.before_run`` on
one shared Runner of the digits demo. The end-to-end versions (Runner.train)
of several rows are in ``tests/test_engine/test_ot_hook_runner.py``; the arbitrary
pickled object refused by ``load_from``/resume through mmengine is also in
``tests/test_engine/test_checkpoint.py``.
"""
import copy
import importlib.util
import os
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmot  # noqa: F401
from mmpretrain.registry import DATASETS, HOOKS, MODELS

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TESTS)
from _runner_utils import ROOT, build, demo_cfg  # noqa: E402

DOC = osp.join(ROOT, 'docs', 'errors.md')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
DIGITS = dict(type='DigitsDataset', split='train')


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
def _code(cell: str) -> str:
    """The text of a Markdown code span (`x` or `` x ``)."""
    cell = cell.strip()
    m = re.fullmatch(r'(`+)\s?(.*?)\s?\1', cell, flags=re.S)
    assert m, f'not a code span: {cell!r}'
    return m.group(2)


def read_table(path=DOC):
    """Rows of the Markdown table: {id: dict(input, error, test)}."""
    rows = {}
    with open(path, encoding='utf-8') as f:
        text = f.read()
    start = text.index('\n## Bad inputs')
    end = text.find('\n## ', start + 1)
    section = text[start:end if end > 0 else None]
    for line in section.splitlines(keepends=True):
        if not line.startswith('|') or set(line.strip()) <= set('|-: '):
            continue
        cells = [c.strip().replace('\\|', '|') for c in
                 re.split(r'(?<!\\)\|', line.strip())[1:-1]]
        if cells[0].lower() == 'id':
            continue
        assert len(cells) == 4, line
        row_id = _code(cells[0])
        assert row_id not in rows, f'duplicate row {row_id}'
        rows[row_id] = dict(input=cells[1], error=_code(cells[2]),
                            test=_code(cells[3]))
    return rows


def assert_documented(row_id, exc, tmp=None):
    """``exc`` is the error (or warning) of row ``row_id``."""
    text = read_table()[row_id]['error']
    if tmp is not None:
        text = text.replace('<tmp>', str(tmp))
    name, _, message = text.partition(': ')
    assert type(exc).__name__ == name, (type(exc).__name__, str(exc))
    pattern = '.*?'.join(re.escape(part) for part in message.split('…'))
    assert re.fullmatch(pattern, str(exc), flags=re.S), \
        f'\nexpected: {message}\nactual:   {exc}'


# ---------------------------------------------------------------------------
# shared fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


class Ctx:
    """What the cases need: a temporary directory, and lazily one Runner of
    the digits demo (3 epochs, stage 2 from epoch 1) with its train loop
    built, and the train tool."""

    runner = None
    tool = None

    def __init__(self, tmp_path, shared):
        self.tmp = tmp_path
        self.shared = shared

    def get_runner(self):
        if self.shared.runner is None:
            runner = build(demo_cfg(self.shared.dir, max_epochs=3,
                                    start_epoch=1))
            runner.train_loop  # builds the loop and the train dataloader
            self.shared.runner = runner
        return self.shared.runner

    def train(self, *argv):
        if self.shared.tool is None:
            spec = importlib.util.spec_from_file_location('mmot_train', TRAIN)
            tool = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(tool)
            self.shared.tool = tool
        return self.shared.tool.main(list(argv))

    def cfg_file(self, **kw):
        cfg = demo_cfg(self.tmp / 'work', **kw)
        path = self.tmp / 'cfg.py'
        cfg.dump(str(path))
        return str(path)


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    class Shared:
        dir = tmp_path_factory.mktemp('bad_inputs_runner')
        runner = None
        tool = None
    return Shared


@pytest.fixture
def ctx(tmp_path, shared):
    return Ctx(tmp_path, shared)


# ---------------------------------------------------------------------------
# the cases, one per row
# ---------------------------------------------------------------------------
def hook(**kw):
    cfg = dict(type='OTReweightHook', start_epoch=1)
    cfg.update(kw)
    return HOOKS.build(cfg)


def before_run(ctx, model_cfg=None, **kw):
    """``OTReweightHook(**kw).before_run`` on the shared Runner, optionally
    with the demo model built from a changed config."""
    runner = ctx.get_runner()
    model = runner.model
    if model_cfg is not None:
        runner.model = MODELS.build(model_cfg)
    try:
        hook(**kw).before_run(runner)
    finally:
        runner.model = model


def demo_model(**head):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'ot_reweight',
                                   'resnet8_1xb32_digits-lt-if20_ot.py'))
    model = copy.deepcopy(cfg.model)
    model.data_preprocessor = cfg.data_preprocessor
    model.head.update(head)
    return model


def long_tail(**kw):
    cfg = dict(type='LongTailDataset', dataset=DIGITS, imbalance_factor=20,
               meta_per_class=10)
    cfg.update(kw)
    return DATASETS.build(cfg)


def ann_dataset(ctx, bad_label, classes=True):
    """A CustomDataset of 'path label' lines, 20 images in each of 10
    classes, plus one line with ``bad_label``. No image is read."""
    ann = ctx.tmp / 'ann.txt'
    lines = [f'c{k}/{i}.png {k}' for k in range(10) for i in range(20)]
    ann.write_text('\n'.join(lines + [f'c9/99.png {bad_label}']) + '\n')
    cfg = dict(type='CustomDataset', data_root=str(ctx.tmp),
               ann_file=str(ann), serialize_data=False)
    if classes:
        cfg['metainfo'] = dict(classes=[str(k) for k in range(10)])
    return cfg


def meta_overlap(ctx):
    """meta_dataset: another list whose first image per class is a training
    image (the same file)."""
    ann, meta = ctx.tmp / 'train.txt', ctx.tmp / 'val.txt'
    ann.write_text(''.join(f'c{k}/{i}.png {k}\n' for k in range(10)
                           for i in range(20)))
    meta.write_text(''.join(f'c{k}/{"v" if i else ""}{i}.png {k}\n'
                            for k in range(10) for i in range(10)))
    classes = dict(classes=[str(k) for k in range(10)])
    with pytest.warns(UserWarning) as record:
        long_tail(
            dataset=dict(type='CustomDataset', data_root=str(ctx.tmp),
                         ann_file=str(ann), metainfo=classes,
                         serialize_data=False),
            imbalance_factor=None, meta_per_class=10,
            meta_dataset=dict(type='CustomDataset', data_root=str(ctx.tmp),
                              ann_file=str(meta), metainfo=classes,
                              serialize_data=False))
    ours = [w.message for w in record if 'LongTailDataset' in str(w.message)]
    assert len(ours) == 1
    raise ours[0]


def save_model_ckpt(ctx, name, num_classes=10, extra=None):
    model = MODELS.build(demo_model(num_classes=num_classes))
    path = ctx.tmp / name
    ckpt = dict(state_dict=model.state_dict(), meta=dict(epoch=1, iter=12))
    if extra is not None:
        ckpt['meta']['extra'] = extra
    torch.save(ckpt, path)
    return path


def damaged(ctx, how):
    data = save_model_ckpt(ctx, 'good.pth').read_bytes()
    path = ctx.tmp / 'epoch_3.pth'
    if how == 'truncated':
        data = data[:len(data) * 2 // 3]
    elif how == 'flipped':
        data = bytearray(data)
        mid = len(data) // 2
        data[mid:mid + 8] = bytes(b ^ 0xFF for b in data[mid:mid + 8])
        data = bytes(data)
    else:
        data = b''
    path.write_bytes(data)
    return path


class RunsShellCommand:
    """Pickles as a call of ``os.system`` (a classic pickle exploit)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def evil_resume(ctx):
    marker = ctx.tmp / 'pwned'
    path = save_model_ckpt(ctx, 'evil.pth', extra=RunsShellCommand(marker))
    try:
        ctx.train(ctx.cfg_file(), '--resume', str(path))
    finally:
        assert not marker.exists()


def no_loadable_checkpoint(ctx):
    damaged(ctx, 'truncated')
    os.remove(ctx.tmp / 'good.pth')
    (ctx.tmp / 'epoch_1.pth').write_bytes(b'not a checkpoint')
    ctx.train(ctx.cfg_file(), '--work-dir', str(ctx.tmp), '--resume')


def gloo_needed(ctx):
    if torch.cuda.is_available():
        pytest.skip('a GPU is available: nccl is fine')
    from mmot.utils import setup_cpu_distributed
    cfg = Config(dict(launcher='pytorch',
                      env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    setup_cpu_distributed(cfg)


def ot_model_cfg(**opts):
    """The demo's OTImageClassifier config with the OT options ``opts``
    (model keys or, for the others, ``reweighter`` keys)."""
    model = demo_model()
    for k, v in opts.items():
        if k in ('ot_features', 'prototype_source', 'meta_forward_mode',
                 'meta_loss_weight', 'meta_loss_source'):
            model.type = 'AuthorsOTImageClassifier'  # the authors' options
            model[k] = v
        else:
            model.reweighter[k] = v
    return model


def ot_model(**opts):
    return MODELS.build(ot_model_cfg(**opts))


def plain_model():
    model = demo_model()
    model.type = 'ImageClassifier'
    model.pop('reweighter')
    return model


def batch_of_one(ctx):
    cfg = demo_cfg(ctx.tmp / 'b1', max_epochs=3, start_epoch=1)
    cfg.train_dataloader.batch_size = 1
    runner = build(cfg)
    runner.train_loop  # builds the loop and the train dataloader
    with pytest.warns(UserWarning) as record:
        hook().before_run(runner)
    raise [w.message for w in record if 'OTReweightHook' in str(w.message)][0]


def meta_empty(ctx):
    cfg = demo_cfg(ctx.tmp / 'm0', max_epochs=3, start_epoch=1)
    cfg.train_dataloader.dataset.meta_per_class = 0
    runner = build(cfg)
    runner.train_loop  # builds the loop and the train dataloader
    hook().before_run(runner)


def preprocessor_num_classes(ctx):
    model = demo_model()
    model.data_preprocessor = dict(model.data_preprocessor, num_classes=12)
    before_run(ctx, model)


def digits_baseline_without_train_set(ctx):
    """``tools/test.py`` on the digits Balanced Softmax baseline with no
    ``train_dataloader``: its LongTailMetric has no class counts."""
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs', 'baselines',
        'resnet8_1xb32_sklearn8x8-lt-if20_balanced-softmax.py'))
    cfg.work_dir = str(ctx.tmp / 'no_train')
    cfg.log_level = 'WARNING'
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
    cfg.param_scheduler = None
    cfg.test_dataloader.dataset.serialize_data = False
    build(cfg).test()


def loss_without_counts(ctx):
    loss = MODELS.build(dict(type='BalancedSoftmaxLoss'))
    loss(torch.zeros(2, 10), torch.tensor([0, 1]))


CASES = {
    # OTImageClassifier (the model and its re-weighter)
    'cost-type': lambda c: ot_model(cost=dict(type='NoSuchCost')),
    'cost-coef-negative': lambda c: ot_model(
        cost=dict(type='CombinedCost', feature_coef=-1.0)),
    'learner-type': lambda c: ot_model(learner=dict(type='NoSuchLearner')),
    'meta-mode': lambda c: ot_model(meta_mode='everything'),
    'reg-zero': lambda c: ot_model(reg=0.0),
    'reg-negative': lambda c: ot_model(reg=-1.0),
    'max-iter-zero': lambda c: ot_model(max_iter=0),
    'tol-negative': lambda c: ot_model(tol=-1e-6),
    'learner-lr': lambda c: ot_model(
        learner=dict(type='WeightVector', lr=-1.0)),
    'learner-momentum': lambda c: ot_model(
        learner=dict(type='WeightVector', momentum=1.5)),
    'learner-parametrization': lambda c: ot_model(
        learner=dict(type='WeightVector', parametrization='exp')),
    'learner-unknown-arg': lambda c: ot_model(
        learner=dict(type='WeightVector', step='per_batch')),
    'reg-string': lambda c: ot_model(reg='0.1'),
    'learner-lr-string': lambda c: ot_model(
        learner=dict(type='WeightVector', lr='1e-3')),
    'cost-coef-string': lambda c: ot_model(
        cost=dict(type='CombinedCost', feature_coef='1')),
    'solver': lambda c: ot_model(solver='pot'),
    'authors-thresh': lambda c: ot_model(solver='authors', authors_thresh=0),
    'num-prototypes-unused': lambda c: ot_model(num_prototypes=5),
    'meta-images-no-weight': lambda c: ot_model(meta_loss_source='images',
                                                meta_loss_weight=0),
    'loss-without-per-sample': lambda c: MODELS.build(dict(
        demo_model(), head=dict(demo_model().head, loss=dict(
            type='CosineSimilarityLoss')))),
    # OTReweightHook
    'freeze-mode': lambda c: hook(freeze_mode='frozen'),
    'freeze-mode-unused': lambda c: hook(freeze_mode='train'),
    'stage2-lr': lambda c: hook(stage2_lr=-1e-3),
    'stage2-sgd-key': lambda c: hook(stage2_lr=1e-3, stage2_sgd=dict(lr=0.1)),
    'stage2-sgd-momentum': lambda c: hook(stage2_lr=1e-3,
                                         stage2_sgd=dict(momentum=1.5)),
    'stage2-sgd-nesterov': lambda c: hook(stage2_lr=1e-3,
                                         stage2_sgd=dict(nesterov=True)),
    'stage2-sgd-unused': lambda c: hook(stage2_sgd=dict(momentum=0.9)),
    'meta-batch-size-zero': lambda c: hook(meta_loader=dict(batch_size=0)),
    't1-missing': lambda c: HOOKS.build(dict(type='OTReweightHook')),
    't1-too-late': lambda c: before_run(c, start_epoch=3),
    'num-classes': lambda c: before_run(c, demo_model(num_classes=12)),
    'preprocessor-num-classes': preprocessor_num_classes,
    'meta-empty': meta_empty,
    'model-type': lambda c: before_run(c, plain_model()),
    'num-prototypes': lambda c: before_run(
        c, ot_model_cfg(meta_mode='stochastic_prototype', num_prototypes=11)),
    'dynamic-meta-too-many': lambda c: before_run(
        c, meta_loader=dict(sampler=dict(type='MetaSetSampler', per_class=10,
                                         dynamic=True))),
    'batch-of-one': batch_of_one,
    # LongTailDataset
    'if-below-1': lambda c: long_tail(imbalance_factor=0.5),
    'profile': lambda c: long_tail(profile='linear'),
    'split': lambda c: long_tail(split='paper'),
    'meta-too-many': lambda c: long_tail(meta_per_class=500),
    'class-empty-after-meta': lambda c: long_tail(imbalance_factor=None,
                                                  meta_per_class=114),
    'class-empty-after-cut': lambda c: long_tail(imbalance_factor=1e6),
    'meta-is-train': lambda c: long_tail(meta_dataset=DIGITS),
    'meta-overlap': meta_overlap,
    'label-out-of-range': lambda c: long_tail(
        dataset=ann_dataset(c, 12), imbalance_factor=None, meta_per_class=2),
    'label-no-classes': lambda c: long_tail(
        dataset=ann_dataset(c, 12, classes=False), imbalance_factor=None,
        meta_per_class=2),
    'meta-label-out-of-range': lambda c: long_tail(
        meta_dataset=ann_dataset(c, 10)),
    # class counts (ClassCountsHook, the long-tail losses)
    'class-counts-no-train-set': digits_baseline_without_train_set,
    'loss-class-counts-unset': loss_without_counts,
    # checkpoints (tools/train.py)
    'ckpt-num-classes-load-from': lambda c: c.train(
        c.cfg_file(), '--cfg-options',
        f'load_from={save_model_ckpt(c, "cls12.pth", 12)}'),
    'ckpt-num-classes-resume': lambda c: c.train(
        c.cfg_file(), '--resume', str(save_model_ckpt(c, 'cls12.pth', 12))),
    'ckpt-truncated': lambda c: c.train(
        c.cfg_file(), '--resume', str(damaged(c, 'truncated'))),
    'ckpt-corrupt': lambda c: c.train(
        c.cfg_file(), '--cfg-options', f'load_from={damaged(c, "flipped")}'),
    'ckpt-empty': lambda c: c.train(
        c.cfg_file(), '--resume', str(damaged(c, 'empty'))),
    'ckpt-missing': lambda c: c.train(
        c.cfg_file(), '--resume', str(c.tmp / 'nope.pth')),
    'ckpt-none-loadable': no_loadable_checkpoint,
    'ckpt-pickle': evil_resume,
    # distributed
    'dist-backend': gloo_needed,
}


@pytest.mark.parametrize('row_id', list(CASES))
def test_bad_input(row_id, ctx):
    with pytest.raises(Exception) as info:
        CASES[row_id](ctx)
    assert_documented(row_id, info.value, ctx.tmp)


def test_table_and_cases_agree():
    rows = read_table()
    assert list(rows) == list(CASES)
    for row_id, row in rows.items():
        assert row['test'] == \
            f'tests/test_tools/test_bad_inputs.py::test_bad_input[{row_id}]', row_id
        assert row['input'] and row['error']


def test_the_doc_is_strict(tmp_path):
    # the checker itself fails on a wrong text or type
    with pytest.raises(AssertionError):
        assert_documented('reg-zero', ValueError('something else'))
    with pytest.raises(AssertionError):
        assert_documented(
            'reg-zero', TypeError('model.reweighter: reg (lambda) '
                                  'must be > 0, got 0.0'))
