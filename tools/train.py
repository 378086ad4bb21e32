# Copyright (c) mmot contributors. All rights reserved.
"""Train a classifier with an mmot / mmpretrain config.

Examples::

    python tools/train.py configs/ot_reweight/<config>.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --resume
    python tools/train.py CONFIG --cfg-options train_cfg.max_epochs=2
    bash tools/dist_train.sh CONFIG 2 --cfg-options \
        env_cfg.dist_cfg.backend=gloo     # 2 processes on CPU
"""
import argparse
import os
import os.path as osp
import sys
from copy import deepcopy

from mmengine.config import Config, ConfigDict, DictAction


def import_mmot():
    """Import mmot (registrations, ``mmot::`` scope, checkpoint allowlist).

    Falls back to the repository this script belongs to when mmot is not
    installed, so ``python tools/train.py`` also works from a plain checkout.
    """
    try:
        import mmot  # noqa: F401
    except ImportError as err:
        repo_root = osp.dirname(osp.dirname(osp.abspath(__file__)))
        if not osp.isfile(osp.join(repo_root, 'mmot', '__init__.py')):
            raise ImportError('mmot is not installed; run `pip install -e .` '
                              'in the mmot repository') from err
        sys.path.insert(0, repo_root)
        import mmot  # noqa: F401


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmot')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, resume from '
        'the latest checkpoint in the work directory (the one '
        '`last_checkpoint` names or, if that one is truncated or corrupt, '
        'the newest epoch_*/iter_* checkpoint that loads)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size divided by '
        '`auto_scale_lr.base_batch_size` of the config')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable the pin_memory option of the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable the persistent_workers option of the dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, given as key=value pairs '
        '(e.g. train_cfg.max_epochs=2 or key="[a,b]" for a list; nested '
        'lists/tuples like key="[(a,b),(c,d)]" need the quotes and no '
        'white space); merged last')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets the LOCAL_RANK environment variable.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Apply the command-line arguments to the config.

    Args:
        cfg (mmengine.Config): The loaded config.
        args (argparse.Namespace): The parsed arguments.

    Returns:
        mmengine.Config: The updated config.
    """
    import torch

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir priority: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if cfg.get('optim_wrapper', None) is None:
            raise ValueError('--amp needs an `optim_wrapper` in the config')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        # resume from the latest checkpoint of the work_dir; load_from (of
        # the config or --cfg-options) stays the start of a fresh run:
        # resolve_checkpoint decides once the work_dir is known
        cfg.resume = 'auto'
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr', None) is None or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    # Dataloader defaults: pinned memory only helps with a GPU.
    default_loader = ConfigDict(
        pin_memory=torch.cuda.is_available(),
        persistent_workers=True,
        collate_fn=dict(type='default_collate'))

    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(field, None) is None:
            continue
        loader = deepcopy(default_loader)
        loader.update(cfg[field])
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers or loader.get('num_workers', 0) == 0:
            # persistent workers need num_workers > 0.
            loader.persistent_workers = False
        cfg[field] = loader

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def _is_local(path) -> bool:
    return isinstance(path, str) and '://' not in path


def resolve_checkpoint(cfg):
    """Check the checkpoint the run will load before anything is built.

    Auto-resume (``--resume`` without a path, or ``resume=True`` without
    ``load_from`` in the config) picks the checkpoint
    ``work_dir/last_checkpoint`` names if it loads and otherwise, with a
    warning, the newest ``epoch_*`` / ``iter_*`` checkpoint that does (see
    :func:`mmot.utils.checkpoint.find_resumable_checkpoint`); ``cfg.load_from``
    is set to it. With ``--resume``, a ``load_from`` of the config or of
    ``--cfg-options`` is the start of the run, not what it resumes: the work
    directory's checkpoint wins, and without one the run starts afresh from
    ``load_from`` (mmengine alone would resume from ``load_from``: a stage 2
    started from a stage-1 checkpoint of a later epoch would then end at
    once). An explicit local checkpoint (``--resume PATH`` or ``load_from``)
    that is truncated, corrupt or refused by the weights-only loader raises
    an error naming the file.

    Args:
        cfg (mmengine.Config): The merged config.

    Returns:
        mmengine.Config: The config, ``load_from`` resolved.
    """
    from mmot.utils.checkpoint import (find_resumable_checkpoint,
                                       verify_checkpoint)

    load_from = cfg.get('load_from', None)
    auto = cfg.get('resume', False) == 'auto'
    if auto or (cfg.get('resume', False) and not load_from):
        found = find_resumable_checkpoint(cfg.work_dir)
        if found is not None:
            cfg.load_from = found
            return cfg
        if auto:  # nothing to resume: a fresh run from load_from, if any
            cfg.resume = False
    if load_from and _is_local(load_from):
        verify_checkpoint(load_from)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    import_mmot()

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmot.utils import setup_cpu_distributed
    from mmot.utils.checkpoint import check_model_matches_checkpoint

    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    cfg = resolve_checkpoint(cfg)
    # mmengine's pytorch launcher assumes GPUs; run on CPU with gloo.
    setup_cpu_distributed(cfg)

    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if _is_local(cfg.get('load_from', None)):
        # mmengine only warns about layers of the wrong shape
        check_model_matches_checkpoint(runner.model, cfg.load_from)
    runner.train()


if __name__ == '__main__':
    main()
