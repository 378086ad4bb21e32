# Copyright (c) mmot contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with an mmot / mmpretrain config.

Examples::

    python tools/test.py CONFIG work_dirs/run1/epoch_200.pth
    python tools/test.py CONFIG CKPT --out results.pkl            # predictions
    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    bash tools/dist_test.sh CONFIG CKPT 2 --cfg-options \
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
    installed, so ``python tools/test.py`` also works from a plain checkout.
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
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model with mmot')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the evaluation logs')
    parser.add_argument(
        '--out', help='file to dump the predictions (or metrics) to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds: the predictions (default) or the metrics')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, given as key=value pairs '
        '(e.g. test_dataloader.batch_size=8 or key="[a,b]" for a list; '
        'nested lists/tuples like key="[(a,b),(c,d)]" need the quotes and '
        'no white space); merged last')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision test')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualized predictions are saved')
    parser.add_argument(
        '--show',
        action='store_true',
        help='display the predictions in a window')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='visualize every `interval` samples')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='display time of every window, in seconds')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable the pin_memory option of the dataloaders')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='enable test-time augmentation: the `tta_model` and '
        '`tta_pipeline` of the config if set, otherwise the average score '
        'of the image and its horizontal flip')
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
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out to name the output file')
    if args.interval < 1:
        parser.error(f'--interval must be >= 1, got {args.interval}')
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

    cfg.launcher = args.launcher

    # work_dir priority: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint

    if args.amp:
        if cfg.get('test_cfg', None) is None:
            cfg.test_cfg = ConfigDict()
        cfg.test_cfg.fp16 = True

    if args.show or args.show_dir is not None:
        hooks = cfg.get('default_hooks', None) or {}
        if 'visualization' not in hooks:
            raise ValueError(
                '--show/--show-dir need a VisualizationHook: set '
                '`default_hooks.visualization = '
                'dict(type="VisualizationHook")` in the config')
        vis = cfg.default_hooks.visualization
        vis.enable = True
        vis.show = args.show
        vis.wait_time = args.wait_time
        vis.out_dir = args.show_dir
        vis.interval = args.interval

    if args.tta:
        if cfg.get('test_dataloader', None) is None:
            raise ValueError('--tta needs a `test_dataloader` in the config')
        if 'tta_model' not in cfg:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.get('pipeline', None)
            if not test_pipeline:
                raise ValueError(
                    '--tta without `tta_pipeline` in the config needs '
                    '`test_dataloader.dataset.pipeline` (ending with the '
                    'packing transform) to build the flip augmentation')
            tta_pipeline = deepcopy(test_pipeline)
            tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ], [test_pipeline[-1]]])
            cfg.tta_pipeline = tta_pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    if cfg.get('test_dataloader', None) is not None:
        loader = ConfigDict(
            pin_memory=torch.cuda.is_available(),
            collate_fn=dict(type='default_collate'))
        loader.update(cfg.test_dataloader)
        if args.no_pin_memory:
            loader.pin_memory = False
        cfg.test_dataloader = loader

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    import_mmot()

    import mmengine
    from mmengine.evaluator import DumpResults
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmot.utils import setup_cpu_distributed

    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    # mmengine's pytorch launcher assumes GPUs; run on CPU with gloo.
    setup_cpu_distributed(cfg)
    for key in ('test_dataloader', 'test_cfg', 'test_evaluator'):
        if cfg.get(key, None) is None:
            raise ValueError(f'The config has no `{key}`; tools/test.py '
                             'needs test_dataloader, test_cfg and '
                             'test_evaluator')

    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)

    if args.out and args.out_item in ('pred', None):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))

    metrics = runner.test()

    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
