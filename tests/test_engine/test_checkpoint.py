# Copyright (c) mmot contributors. All rights reserved.
"""mmengine checkpoints load under ``torch.load(weights_only=True)``."""
import builtins
import os
import os.path as osp
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

import mmot  # noqa: F401  (registers the allowlist and CifarResNet)
from mmot.utils import (check_checkpoint, get_checkpoint_safe_globals,
                        history_buffer_getattr,
                        register_checkpoint_safe_globals)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NUM_CLASSES = 3
TRAIN_SIZE = 12
BATCH_SIZE = 4
ITERS_PER_EPOCH = TRAIN_SIZE // BATCH_SIZE


class TinyImages(Dataset):
    """Deterministic random 8x8 RGB images with 3 classes."""

    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(index)
        img = (torch.rand(3, 8, 8, generator=gen) * 255).to(torch.uint8)
        return dict(
            inputs=img,
            data_samples=DataSample().set_gt_label(index % NUM_CLASSES))


class CountTrainIters(Hook):
    """Count the training iterations this runner really executes."""

    def __init__(self):
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.count += 1


def make_runner(work_dir, name, max_epochs=2, save_best='auto', **kwargs):
    loader = dict(
        batch_size=BATCH_SIZE,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'))
    return Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=NUM_CLASSES,
                in_channels=64),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[127.5] * 3,
                std=[127.5] * 3)),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(dataset=TinyImages(TRAIN_SIZE), **loader),
        val_dataloader=dict(
            dataset=TinyImages(6),
            **dict(loader, sampler=dict(type='DefaultSampler',
                                        shuffle=False))),
        val_evaluator=dict(type='Accuracy', topk=(1, )),
        val_cfg=dict(),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.05, momentum=0.9, weight_decay=2e-4)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=True, end=1),
            dict(type='MultiStepLR', by_epoch=True, milestones=[1, 2])
        ],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=1, save_best=save_best),
            logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        **kwargs)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train 2 epochs and return (work_dir, path of the last checkpoint)."""
    work_dir = tmp_path_factory.mktemp('ckpt_run')
    runner = make_runner(work_dir, 'mmot_ckpt_train')
    runner.train()
    ckpt = work_dir / 'epoch_2.pth'
    assert ckpt.is_file()
    return work_dir, ckpt


def test_runner_checkpoint_loads_with_weights_only(trained):
    _, ckpt = trained
    # Nothing in a real Runner checkpoint is outside the allowlist ...
    assert check_checkpoint(ckpt) == []
    # ... and the safe loader (the default of torch>=2.6) restores it fully.
    checkpoint = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert checkpoint['meta']['epoch'] == 2
    assert checkpoint['meta']['iter'] == 2 * ITERS_PER_EPOCH
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].dtype == np.float64
    assert len(buffer.data[0]) == 2 * ITERS_PER_EPOCH
    assert np.isfinite(buffer.mean())
    assert checkpoint['message_hub']['runtime_info']['dataset_meta'] == {
        'classes': ('a', 'b', 'c')
    }


def test_resume_continues_training(trained, tmp_path):
    work_dir, ckpt = trained
    resume_dir = tmp_path / 'resume'
    resume_dir.mkdir()
    counter = CountTrainIters()
    runner = make_runner(
        resume_dir,
        'mmot_ckpt_resume',
        max_epochs=3,
        resume=True,
        load_from=str(ckpt),
        custom_hooks=[counter])
    runner.train()
    # Only the third epoch ran: epochs 1-2 came from the checkpoint.
    assert counter.count == ITERS_PER_EPOCH
    assert runner.epoch == 3
    assert runner.iter == 3 * ITERS_PER_EPOCH
    # The logged history was restored too, then extended.
    loss_history = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(loss_history) == 3 * ITERS_PER_EPOCH
    assert (resume_dir / 'epoch_3.pth').is_file()


def test_auto_resume_from_work_dir(trained, tmp_path):
    _, ckpt = trained
    # `resume=True` without a path resumes from the checkpoint named in
    # `<work_dir>/last_checkpoint`.
    local_ckpt = tmp_path / 'epoch_2.pth'
    shutil.copyfile(ckpt, local_ckpt)
    (tmp_path / 'last_checkpoint').write_text(str(local_ckpt))
    counter = CountTrainIters()
    runner = make_runner(
        tmp_path,
        'mmot_ckpt_auto_resume',
        max_epochs=3,
        resume=True,
        custom_hooks=[counter])
    runner.train()
    assert counter.count == ITERS_PER_EPOCH
    assert runner.epoch == 3


def test_load_from_restores_weights(trained, tmp_path):
    _, ckpt = trained
    runner = make_runner(
        tmp_path, 'mmot_ckpt_load_from', save_best=None, load_from=str(ckpt))
    metrics = runner.val()
    assert 'accuracy/top1' in metrics
    expected = torch.load(ckpt, map_location='cpu')['state_dict']
    state = runner.model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value)


def test_load_checkpoint_into_model(trained):
    _, ckpt = trained
    net = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=NUM_CLASSES,
                in_channels=64)))
    checkpoint = load_checkpoint(net, str(ckpt), map_location='cpu')
    torch.testing.assert_close(net.head.fc.weight,
                               checkpoint['state_dict']['head.fc.weight'])


class NotAllowlisted:
    """A class that no allowlist knows about."""

    def __init__(self):
        self.payload = 1


class RunsShellCommand:
    """Pickles as a call of ``os.system`` (a classic pickle exploit)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class AbusesGetattr:
    """Pickles as ``getattr(HistoryBuffer, '__init__')``."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def _save_with(tmp_path, name, extra):
    net = torch.nn.Linear(2, 2)
    path = tmp_path / name
    torch.save(dict(state_dict=net.state_dict(), meta=dict(extra=extra)),
               path)
    return net, path


def test_arbitrary_class_is_refused(tmp_path):
    net, path = _save_with(tmp_path, 'local_class.pth', NotAllowlisted())
    assert any('NotAllowlisted' in name for name in check_checkpoint(path))
    with pytest.raises(pickle.UnpicklingError, match='NotAllowlisted'):
        load_checkpoint(net, str(path), map_location='cpu')


def test_os_system_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    net, path = _save_with(tmp_path, 'os_system.pth',
                           RunsShellCommand(marker))
    assert any('system' in name for name in check_checkpoint(path))
    with pytest.raises(pickle.UnpicklingError, match='system'):
        load_checkpoint(net, str(path), map_location='cpu')
    assert not marker.exists()


def test_getattr_alias_is_restricted(tmp_path):
    net, path = _save_with(tmp_path, 'getattr.pth', AbusesGetattr())
    with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
        load_checkpoint(net, str(path), map_location='cpu')
    # The statistics methods themselves are the only thing it returns.
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in [(HistoryBuffer, '__init__'), (HistoryBuffer(), 'mean'),
                      (os, 'system'), (builtins, 'eval')]:
        with pytest.raises(pickle.UnpicklingError):
            history_buffer_getattr(obj, name)


def test_object_arrays_are_refused(tmp_path):
    net, path = _save_with(tmp_path, 'object_array.pth',
                           np.array([1, 'a'], dtype=object))
    with pytest.raises(pickle.UnpicklingError, match='ObjectDType'):
        load_checkpoint(net, str(path), map_location='cpu')


def test_numeric_numpy_payloads_round_trip(tmp_path):
    payload = dict(
        f64=np.arange(4, dtype=np.float64),
        f32=np.ones((2, 2), dtype=np.float32),
        i64=np.arange(3, dtype=np.int64),
        u8=np.arange(3, dtype=np.uint8),
        flags=np.array([True, False]),
        scalar=np.float64(0.25),
        int_scalar=np.int64(7))
    path = tmp_path / 'numpy.pth'
    torch.save(payload, path)
    loaded = torch.load(path, weights_only=True)
    for key, value in payload.items():
        assert type(loaded[key]) is type(value), key
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype


class _Numpy1Pickler(pickle._Pickler):
    """Writes numpy's rebuild functions under their numpy 1.x names."""

    def save_global(self, obj, name=None):
        for func_name in ('_reconstruct', 'scalar'):
            func = getattr(np._core.multiarray, func_name)
            if obj is func:
                self.write(pickle.GLOBAL + b'numpy.core.multiarray\n' +
                           func_name.encode() + b'\n')
                self.memoize(obj)
                return
        super().save_global(obj, name)


class _Numpy1PickleModule:
    __name__ = 'numpy1_pickle'
    Pickler = _Numpy1Pickler
    Unpickler = pickle.Unpickler
    HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL


def test_numpy1_names_are_allowlisted(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(2.5)
    payload = dict(buffer=buffer, scalar=np.float64(3.0))
    path = tmp_path / 'numpy1.pth'
    torch.save(payload, path, pickle_module=_Numpy1PickleModule)
    with zipfile.ZipFile(path) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith('data.pkl'))
        data = zf.read(pkl)
    assert b'numpy.core.multiarray\n_reconstruct' in data
    assert b'numpy.core.multiarray\nscalar' in data
    assert b'numpy._core' not in data
    assert check_checkpoint(path) == []
    loaded = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(loaded['buffer'].data[0], [1.5, 2.5])
    assert loaded['buffer'].mean() == pytest.approx(2.0)
    assert loaded['scalar'] == 3.0


def test_allowlist_is_explicit():
    entries = get_checkpoint_safe_globals()
    names = set()
    for entry in entries:
        obj, name = entry if isinstance(entry, tuple) else (
            entry, f'{entry.__module__}.{entry.__qualname__}')
        names.add(name)
        # Classes and functions only: no modules or other wildcards.
        assert isinstance(obj, type) or callable(obj)
        assert not isinstance(obj, type(os))
        # No Python builtin is allowlisted as itself (eval, getattr, ...).
        assert getattr(obj, '__module__', None) != 'builtins', entry
        assert obj not in (eval, exec, getattr, setattr, __import__,
                           compile, open, os.system)
    assert 'builtins.getattr' in names
    assert {
        'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray',
        'numpy.dtype', 'numpy._core.multiarray._reconstruct',
        'numpy.core.multiarray._reconstruct',
        'numpy._core.multiarray.scalar', 'numpy.core.multiarray.scalar',
        'numpy.dtypes.Float64DType', 'numpy.dtypes.Int64DType'
    } <= names
    assert 'numpy.dtypes.ObjectDType' not in names
    assert not any('*' in name for name in names)


def test_register_is_idempotent():
    before = list(torch.serialization.get_safe_globals())
    register_checkpoint_safe_globals()
    register_checkpoint_safe_globals()
    assert list(torch.serialization.get_safe_globals()) == before
    for entry in get_checkpoint_safe_globals():
        assert entry in before


def test_register_restores_cleared_allowlist():
    saved = list(torch.serialization.get_safe_globals())
    try:
        torch.serialization.clear_safe_globals()
        register_checkpoint_safe_globals()
        current = torch.serialization.get_safe_globals()
        for entry in get_checkpoint_safe_globals():
            assert entry in current
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def test_no_unsafe_load_in_sources():
    forbidden = 'weights_only=' + 'False'
    offenders = []
    for folder in ('mmot', 'tools'):
        for root, _, files in os.walk(osp.join(REPO_ROOT, folder)):
            for fname in files:
                if not fname.endswith(('.py', '.sh')):
                    continue
                path = osp.join(root, fname)
                with open(path, encoding='utf-8') as f:
                    if forbidden in f.read().replace(' ', ''):
                        offenders.append(path)
    assert offenders == []
