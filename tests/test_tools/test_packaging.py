# Copyright (c) mmot contributors. All rights reserved.
"""Packaging: `mmot::` configs, requirements, and the tools/ scripts."""
import importlib.metadata
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from torch.utils.data import Dataset

import mmot
from mmot.models.backbones import CifarResNet
from mmot.utils import get_mmot_installed_path, mim_configs_path
from mmpretrain.registry import DATASETS
from mmpretrain.structures import DataSample

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _is_pip_installed():
    try:
        importlib.metadata.distribution('mmot')
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


requires_install = pytest.mark.skipif(
    not _is_pip_installed(),
    reason='mmot is not pip-installed (run `pip install -e .`), so '
    'mmot/.mim/configs does not exist')


def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version():
    assert isinstance(mmot.__version__, str)
    assert mmot.__version__.count('.') == 2
    from mmot.version import parse_version_info
    assert parse_version_info('1.2.3') == (1, 2, 3)
    assert parse_version_info('0.1.0rc2') == (0, 1, 0, 'rc2')
    with pytest.raises(ValueError):
        parse_version_info('1.x')


def test_mmot_scope_is_registered():
    assert MODULE2PACKAGE['mmot'] == 'mmot'
    assert get_mmot_installed_path() == osp.dirname(osp.abspath(
        mmot.__file__))
    from mmengine.config import config as config_module
    # mmengine's lookup answers for mmot with the imported package folder,
    # also for PEP 660 editable installs.
    assert config_module.get_installed_path('mmot') == \
        get_mmot_installed_path()
    assert config_module.is_installed('mmot')


@requires_install
def test_mim_folder_is_populated():
    configs = mim_configs_path()
    assert osp.isfile(osp.join(configs, '_base_', 'default_runtime.py'))
    mim = osp.dirname(configs)
    assert osp.isfile(osp.join(mim, 'model-index.yml'))
    assert osp.isfile(osp.join(mim, 'tools', 'train.py'))


@requires_install
def test_config_inherits_mmot_base(tmp_path):
    cfg_file = tmp_path / 'tiny.py'
    cfg_file.write_text(
        "_base_ = ['mmot::_base_/default_runtime.py']\n"
        "default_hooks = dict(logger=dict(interval=5))\n")
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(
        imports=['mmot'], allow_failed_imports=False)
    assert cfg.default_hooks.logger.interval == 5
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert cfg.load_from is None and cfg.resume is False
    # mmengine tags the inherited modules with the `mmot` scope; they must
    # still build (mmot.registry nodes fall through to mmpretrain).
    assert cfg.visualizer._scope_ == 'mmot'
    assert cfg.default_hooks.visualization._scope_ == 'mmot'
    visualizer = MMENGINE_VISUALIZERS.build(
        dict(cfg.visualizer, name='mmot_test_packaging', save_dir=None))
    assert type(visualizer).__name__ == 'UniversalVisualizer'
    assert type(visualizer).__module__.startswith('mmpretrain.')
    hook = MMENGINE_HOOKS.build(cfg.default_hooks.visualization)
    assert type(hook).__module__.startswith('mmpretrain.')
    # mmot's own hook in the inherited runtime builds too
    hook = MMENGINE_HOOKS.build(cfg.default_hooks.class_counts)
    assert type(hook).__name__ == 'ClassCountsHook'
    backbone = MMENGINE_MODELS.build(
        dict(type='CifarResNet', depth=8, _scope_='mmot'))
    assert isinstance(backbone, CifarResNet)


def test_runtime_config_content():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py'))
    hooks = cfg.default_hooks
    assert {h.type for h in hooks.values()} == {
        'IterTimerHook', 'LoggerHook', 'ParamSchedulerHook',
        'CheckpointHook', 'DistSamplerSeedHook', 'VisualizationHook',
        'ClassCountsHook'
    }
    assert hooks.visualization.enable is False
    assert cfg.env_cfg.cudnn_benchmark is False
    assert cfg.env_cfg.mp_cfg == dict(
        mp_start_method='fork', opencv_num_threads=0)
    assert cfg.vis_backends == [dict(type='LocalVisBackend')]
    assert cfg.log_level == 'INFO'
    assert 'seed' in cfg.randomness


def test_requirements_are_installed():
    from packaging.requirements import Requirement
    setup = _load_module('mmot_setup', osp.join(REPO_ROOT, 'setup.py'))
    runtime = setup.parse_requirements('requirements/runtime.txt')
    names = {Requirement(r).name.lower() for r in runtime}
    assert {'torch', 'torchvision', 'mmengine', 'mmcv-lite', 'mmpretrain',
            'numpy', 'scikit-learn', 'matplotlib'} <= names
    assert 'mmcv' not in names, 'list mmcv-lite only, not the full mmcv'
    tests = setup.parse_requirements('requirements/tests.txt')
    assert {Requirement(r).name.lower() for r in tests} >= {'pytest', 'pot'}
    # The environment running the tests satisfies every pin.
    for line in runtime + tests:
        req = Requirement(line)
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), (
            f'{req.name} {version} does not satisfy {line!r}')


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tool_help(tool):
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', tool), '--help'],
        capture_output=True,
        text=True,
        timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ('--work-dir', '--cfg-options', '--launcher'):
        assert option in result.stdout
    if tool == 'train.py':
        for option in ('--resume', '--amp', '--no-validate',
                       '--auto-scale-lr', '--no-persistent-workers'):
            assert option in result.stdout
    else:
        for option in ('--out-item', '--show-dir', '--tta', '--wait-time'):
            assert option in result.stdout


@DATASETS.register_module(force=True)
class PackagingToyDataset(Dataset):
    """Twelve deterministic 8x8 grayscale images of 2 classes."""

    metainfo = dict(classes=('x', 'y'))

    def __init__(self, size=12):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(index)
        img = (torch.rand(1, 8, 8, generator=gen) * 255).to(torch.uint8)
        return dict(
            inputs=img, data_samples=DataSample().set_gt_label(index % 2))


TOY_CONFIG = """
_base_ = ['{base}']
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=8, in_channels=1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=64),
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=2,
                           mean=[127.5], std=[127.5], to_rgb=False))
loader = dict(batch_size=4, num_workers=0,
              dataset=dict(type='PackagingToyDataset'),
              sampler=dict(type='DefaultSampler', shuffle=False))
train_dataloader = loader
val_dataloader = loader
test_dataloader = loader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""


def test_train_and_test_tools(tmp_path):
    if _is_pip_installed():
        base = 'mmot::_base_/default_runtime.py'
    else:
        base = osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py')
    cfg_file = tmp_path / 'toy.py'
    cfg_file.write_text(TOY_CONFIG.format(base=base))
    work_dir = tmp_path / 'work'
    train = _load_module('mmot_tools_train',
                         osp.join(REPO_ROOT, 'tools', 'train.py'))
    test = _load_module('mmot_tools_test',
                        osp.join(REPO_ROOT, 'tools', 'test.py'))

    train.main([str(cfg_file), '--work-dir', str(work_dir)])
    assert (work_dir / 'epoch_1.pth').is_file()
    # The bare --resume flag continues from the latest checkpoint; options
    # given with --cfg-options are applied.
    train.main([
        str(cfg_file), '--work-dir',
        str(work_dir), '--resume', '--no-validate', '--cfg-options',
        'train_cfg.max_epochs=2'
    ])
    ckpt = torch.load(work_dir / 'epoch_2.pth', map_location='cpu')
    assert ckpt['meta']['epoch'] == 2
    assert ckpt['meta']['iter'] == 2 * 3

    out = tmp_path / 'metrics.json'
    metrics = test.main([
        str(cfg_file),
        str(work_dir / 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(out), '--out-item', 'metrics'
    ])
    assert 'accuracy/top1' in metrics
    assert json.loads(out.read_text()) == pytest.approx(metrics)


def test_resume_keeps_load_from_as_the_start(tmp_path):
    """``--resume`` with a ``load_from`` option (a stage 2 started from a
    stage-1 checkpoint): a fresh work_dir starts from load_from's weights,
    a work_dir with a checkpoint resumes its own run. mmengine alone resumes
    from load_from, and a run from a checkpoint past its own length ends at
    once without training."""
    base = 'mmot::_base_/default_runtime.py' if _is_pip_installed() else \
        osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py')
    cfg_file = tmp_path / 'toy.py'
    cfg_file.write_text(TOY_CONFIG.format(base=base))
    train = _load_module('mmot_tools_train_resume',
                         osp.join(REPO_ROOT, 'tools', 'train.py'))
    start = tmp_path / 'stage1'
    train.main([str(cfg_file), '--work-dir', str(start), '--no-validate',
                '--cfg-options', 'train_cfg.max_epochs=2'])
    run = tmp_path / 'stage2'
    opts = ['--work-dir', str(run), '--resume', '--no-validate',
            '--cfg-options', f'load_from={start / "epoch_2.pth"}']
    train.main([str(cfg_file), *opts, 'train_cfg.max_epochs=1'])
    ckpt = torch.load(run / 'epoch_1.pth', map_location='cpu')
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (1, 3)
    train.main([str(cfg_file), *opts, 'train_cfg.max_epochs=2'])
    ckpt = torch.load(run / 'epoch_2.pth', map_location='cpu')
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (2, 6)


def test_merge_args_dataloader_defaults():
    train = _load_module('mmot_tools_train_args',
                         osp.join(REPO_ROOT, 'tools', 'train.py'))
    cfg = Config(
        dict(
            train_dataloader=dict(batch_size=2, num_workers=0),
            val_dataloader=dict(batch_size=2, num_workers=2),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    args = train.parse_args(['cfg.py', '--amp', '--resume', 'a.pth'])
    cfg = train.merge_args(cfg, args)
    assert cfg.work_dir == osp.join('./work_dirs', 'cfg')
    assert cfg.resume is True and cfg.load_from == 'a.pth'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.val_dataloader.pin_memory == torch.cuda.is_available()
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    with pytest.raises(ValueError, match='auto_scale_lr'):
        train.merge_args(cfg, train.parse_args(['cfg.py', '--auto-scale-lr']))
    args = train.parse_args(['cfg.py', '--no-validate', '--resume'])
    cfg = train.merge_args(cfg, args)
    assert cfg.val_dataloader is None and cfg.val_cfg is None
    # decided by resolve_checkpoint once the work_dir is known
    assert cfg.resume == 'auto' and cfg.load_from == 'a.pth'


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='tests the CPU-only code path')
def test_setup_cpu_distributed(monkeypatch):
    import socket

    import torch.distributed as dist

    from mmot.utils import setup_cpu_distributed

    assert setup_cpu_distributed(Config(dict(launcher='none'))) is False
    with pytest.raises(ValueError, match='env_cfg.dist_cfg.backend'):
        setup_cpu_distributed(
            Config(
                dict(
                    launcher='pytorch',
                    env_cfg=dict(dist_cfg=dict(backend='nccl')))))

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    for key, value in dict(
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(port),
            RANK='0',
            LOCAL_RANK='0',
            WORLD_SIZE='1').items():
        monkeypatch.setenv(key, value)
    cfg = Config(
        dict(
            launcher='pytorch',
            find_unused_parameters=True,
            env_cfg=dict(dist_cfg=dict(backend='gloo', timeout=60))))
    try:
        assert setup_cpu_distributed(cfg) is True
        assert dist.is_initialized()
        assert dist.get_backend() == 'gloo'
        assert cfg.model_wrapper_cfg.device_ids is None
        assert cfg.model_wrapper_cfg.find_unused_parameters is True
        # The wrapper the Runner builds from it accepts a CPU model.
        from mmengine.registry import MODEL_WRAPPERS
        from mmpretrain.registry import MODELS
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='CifarResNet', depth=8)))
        wrapped = MODEL_WRAPPERS.build(
            cfg.model_wrapper_cfg,
            default_args=dict(module=model, device_ids=[0]))
        assert wrapped.device_ids is None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
