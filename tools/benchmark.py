# Copyright (c) mmot contributors. All rights reserved.
"""Benchmark OT re-weighting against the long-tail baselines on CIFAR-10-LT
read from the JPEG folders (``../shared/data/cifar10-jpg.tar.gz``), one
command, resumable.

Per seed, one ResNet-32 is trained with plain CE (stage 1,
``configs/baselines/resnet32_1xb128_cifar10-lt-if100_ce.py``) and reused:

* ``ce`` and the post-hoc corrections (``logit_adjust_posthoc``,
  ``ot_posthoc``, ``otlm``) evaluate its last checkpoint (one test pass,
  mmot ``LongTailMetric`` / ``PostHocMetric`` with the settings of the
  ``*_posthoc-*.py`` configs);
* the decoupled stage-2 methods (``ce_drw``, ``crt``, ``ot_reweight``,
  ``ot_reweight_official``, ``ot_reweight_global``, ``ot_reweight_label``,
  ``ot_reweight_feature``)
  start from it (``load_from``; cRT loads the backbone only) and train
  ``--stage2-epochs`` epochs at one batch size;
* ``focal``, ``balanced_softmax``, ``seesaw``, ``ldam_drw``,
  ``class_balanced``, ``logit_adjust_loss`` train their own stage 1 from
  their baseline config.

Every run's config is one of the zoo's configs (``Config.fromfile``) with
the JPEG-folder data of ``configs/_base_/datasets/cifar10_lt_folder.py``,
the imbalance factor, the epoch budget, the seed and ``work_dir =
OUT/runs/<seed>/<method>`` put in; the Runner trains it in this process and
``Runner.test`` evaluates the *last* checkpoint on the balanced test set.
Nothing is selected on the test set: no validation during training, every
hyper-parameter is the config's (the paper's or the baseline recipe's).

Outputs: ``OUT/results.json``, ``OUT/results.md``, ``OUT/per_class_acc.png``,
``OUT/ot_class_weights.png`` and, with ``--sinkhorn-bench``,
``OUT/sinkhorn_bench.{json,md}``. See ``docs/benchmarks/README.md``.

Resuming: run the same command again. Runs whose ``result.json`` exists are
skipped, a run with checkpoints continues from its newest loadable one.

Example::

    tar xzf ../shared/data/cifar10-jpg.tar.gz -C /tmp
    python tools/benchmark.py --data-root /tmp/cifar10-jpg \\
        --imbalance-factor 100 --out work_dirs/bench --seeds 0 1 2
"""
import argparse
import copy
import gc
import importlib.util
import json
import math
import os
import os.path as osp
import platform
import shlex
import subprocess
import sys
import time
import traceback

import numpy as np
from mmengine.config import DictAction

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')

FOLDER_DATA = '_base_/datasets/cifar10_lt_folder.py'
CE_STAGE1 = 'baselines/resnet32_1xb128_cifar10-lt-if100_ce.py'
# the stage-1 configs' SGD weight decay (LDAM-DRW's CIFAR-LT recipe)
CONFIG_WEIGHT_DECAY = 2e-4
STAGE2_CW = 'baselines/resnet32_1xb16_cifar10-lt-if100_stage2-cw.py'
STAGE2_CRT = 'baselines/resnet32_1xb16_cifar10-lt-if100_stage2-crt.py'
STAGE2_BS = ('baselines/'
             'resnet32_1xb16_cifar10-lt-if100_stage2-balanced-softmax.py')
OT_STAGE2 = 'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-stage2.py'
OT_PAPER = 'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot.py'
OT_OFFICIAL = 'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-official.py'
OT_GLOBAL = 'ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-global.py'
OT_LABEL = 'ot_reweight/resnet32_1xb16_cifar100-lt-if200_ot-label-prototype.py'
OT_FEATURE = ('ot_reweight/'
              'resnet32_1xb16_cifar100-lt-if200_ot-feature-prototype.py')
POSTHOC = 'baselines/resnet32_1xb128_cifar10-lt-if100_posthoc-{}.py'
BASELINE = 'baselines/resnet32_1xb128_cifar10-lt-if100_{}.py'

# kind: 'eval' = evaluated on the shared stage-1 checkpoint; 'stage2' =
# decoupled stage 2 from it; 'own' = its own stage 1.
METHODS = {
    'ce': dict(
        kind='eval',
        desc='cross-entropy: the shared stage-1 model, evaluated as is'),
    'logit_adjust_posthoc': dict(
        kind='eval', config=POSTHOC.format('logit-adjust'),
        desc='post-hoc logit adjustment (tau 1) of the stage-1 model'),
    'ot_posthoc': dict(
        kind='eval', config=POSTHOC.format('ot'),
        desc='post-hoc OT correction to a uniform class marginal (Peng et '
        'al. 2022, Eq. 11, lambda 1) of the stage-1 model'),
    'otlm': dict(
        kind='eval', config=POSTHOC.format('otlm'),
        desc='OTLM (Peng et al. 2022, Eq. 12): linear map of the stage-1 '
        'logits fitted without labels on the test predictions'),
    'ce_drw': dict(
        kind='stage2', config=STAGE2_CW,
        desc='class-weighted (effective number, beta 0.9999) CE fine-tune, '
        "the control of ot_reweight's stage 2 (same start, lr, batch, "
        'epochs and trained parameters)'),
    'balanced_softmax_decoupled': dict(
        kind='stage2', config=STAGE2_BS,
        desc='decoupled Balanced Softmax (BALMS): the stage-1 classifier '
        'fine-tuned with the Balanced Softmax loss on the frozen backbone '
        "(ot_reweight's start, lr, batch, epochs, trained parameters)"),
    'crt': dict(
        kind='stage2', config=STAGE2_CRT,
        desc='cRT: classifier re-initialised and re-trained with '
        'class-balanced sampling on the frozen backbone (lr 0.01 cosine)'),
    'ot_reweight': dict(
        kind='stage2', config=OT_STAGE2, hook=OT_PAPER,
        desc='OT re-weighting, paper text (uniform init, beta 1e-3, '
        '(1 - cos) + 0/1 label cost, feature prototypes)'),
    'ot_reweight_official': dict(
        kind='stage2', config=OT_STAGE2, hook=OT_OFFICIAL,
        desc="OT re-weighting as the authors' code computes it (raw CB-"
        'initialised weights in the loss, per-batch step beta 1e-2 on '
        'softmax(w_B), 0.5/0.5 mse cost, their Sinkhorn rule, image '
        'prototypes, + 10 x meta CE through the network in train mode, '
        'BatchNorm in train mode, classifier only, Nesterov alpha 2e-5)'),
    'ot_reweight_global': dict(
        kind='stage2', config=OT_STAGE2, hook=OT_GLOBAL,
        desc='OT re-weighting over the whole training set (GlobalWeightVector'
        ': paper-text costs, P(w) over all N training examples, feature bank, '
        'a global OT step every 10 iterations, mirror step 1.0 with the bold-'
        'driver step size, loss weight N w_i / B)'),
    'ot_reweight_label': dict(
        kind='stage2', config=OT_STAGE2, hook=OT_PAPER, cost=OT_LABEL,
        desc='ot_reweight with the label cost only (0/1)'),
    'ot_reweight_feature': dict(
        kind='stage2', config=OT_STAGE2, hook=OT_PAPER, cost=OT_FEATURE,
        desc='ot_reweight with the feature cost only (1 - cos)'),
    'focal': dict(
        kind='own', config=BASELINE.format('focal'),
        desc='focal loss (gamma 2, alpha 0.25), own stage 1'),
    'balanced_softmax': dict(
        kind='own', config=BASELINE.format('balanced-softmax'),
        desc='Balanced Softmax, own stage 1'),
    'seesaw': dict(
        kind='own', config=BASELINE.format('seesaw'),
        desc='Seesaw loss (p 0.8, q 2), own stage 1'),
    'ldam_drw': dict(
        kind='own', config=BASELINE.format('ldam-drw'),
        desc='LDAM (m 0.5, s 30) + DRW from 80 % of stage 1, own stage 1'),
    'class_balanced': dict(
        kind='own', config=BASELINE.format('class-balanced-dataset'),
        desc='class-balanced (repeat-factor, t 0.1) sampling, own stage 1'),
    'logit_adjust_loss': dict(
        kind='own', config=BASELINE.format('logit-adjust'),
        desc='logit-adjusted loss (tau 1), own stage 1'),
}
# what ../shared/checks/bench.sh needs
DEFAULT_METHODS = [
    'ce', 'ce_drw', 'crt', 'balanced_softmax_decoupled', 'balanced_softmax',
    'logit_adjust_posthoc',
    'ot_posthoc', 'otlm', 'seesaw', 'focal', 'ot_reweight',
    'ot_reweight_official', 'ot_reweight_global', 'ot_reweight_label',
    'ot_reweight_feature'
]
# The OT paper's Table 1 (ResNet-32, CIFAR-LT-10, imbalance factor 100; top-1
# = 100 - the reported error), for the rows it has: {method: (top-1, row)}.
PAPER_TABLE1_IF100 = {
    'ce': (70.14, 'CE loss'),
    'ce_drw': (72.68, 'CB, CE loss (end to end; ce_drw re-weights a '
               'decoupled stage 2)'),
    'focal': (70.38, 'Focal loss'),
    'ldam_drw': (78.12, 'LDAM-DRW'),
    'ot_reweight': (81.87, 'Our method (Weight Vector)'),
    'ot_reweight_official': (81.87, 'Our method (Weight Vector)'),
}
STAGE1_DIR = 'stage1_ce'
RESULT = 'result.json'
TRAIN_DONE = 'train_done.json'
ACC_KEYS = (('top1', 'top1'), ('many', 'many_shot'), ('medium', 'medium_shot'),
            ('few', 'few_shot'), ('balanced_acc', 'balanced_acc'))
TIME_KEYS = ('sec_per_iter', 'stage2_sec_per_iter')
# reported where present (ot_reweight_official: the authors' selection)
OPTIONAL_KEYS = ('top1_best_epoch_test_selection', 'best_test_epoch',
                 'stage2_cached_sec_per_iter')
# iterations at the start of a run left out of the timing (allocations)
WARMUP_ITERS = 5


class BenchmarkError(RuntimeError):
    """A wrong argument or an OUT that does not fit the command."""


def log(msg):
    print(f'[benchmark {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def import_mmot():
    try:
        import mmot  # noqa: F401
    except ImportError:
        sys.path.insert(0, REPO)
        import mmot  # noqa: F401


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='OT re-weighting vs the baselines on CIFAR-10-LT (JPEG '
        'folders): train, evaluate, tabulate; resumable',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--data-root',
                   help='extracted cifar10-jpg folder with train/<class>/ and '
                   'test/<class>/ (tar xzf cifar10-jpg.tar.gz -C /tmp)')
    p.add_argument('--imbalance-factor', type=float, default=100.)
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--stage1-epochs', type=int, default=10)
    p.add_argument('--stage2-epochs', type=int, default=2)
    p.add_argument('--methods', nargs='+', default=None,
                   help='methods to run (default: ' + ' '.join(DEFAULT_METHODS)
                   + '; "all" = every method: ' + ' '.join(METHODS) + ')')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--stage1-schedule', choices=['cosine', 'step'],
                   default='cosine',
                   help='stage-1 lr after the warm-up: cosine to 0, or x0.01 '
                   'at 80 %% and 90 %% of the epochs (the 200-epoch recipe '
                   'scaled)')
    p.add_argument('--stage1-batch-size', type=int, default=128)
    p.add_argument('--stage1-weight-decay', type=float, default=None,
                   help='SGD weight decay of every stage-1 run (default: '
                   'the configs\', 2e-4, the LDAM-DRW CIFAR-LT recipe); to '
                   'tune it, pair it with --eval-split val')
    p.add_argument('--stage1-from', metavar='ZOO_DIR',
                   help='start from the stage-1 model zoo instead of training '
                   'stage 1: ZOO_DIR/seed<S>_epoch<E>.pth (E = '
                   '--stage1-epochs; ot_reweight_official takes '
                   'seed<S>_epoch<--official-from-epoch>.pth), e.g. '
                   'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce')
    p.add_argument('--official-from-epoch', type=int, default=None,
                   help='stage-1 epoch the stage 2 of ot_reweight_official '
                   'starts from with --stage1-from (the authors\' code runs '
                   'range(160, 250): 160); default: --stage1-epochs')
    p.add_argument('--official-stage2-epochs', type=int, default=None,
                   help='stage-2 epochs of ot_reweight_official (the '
                   'authors\': 90); default: --stage2-epochs')
    p.add_argument('--official-test-every-epoch', choices=['on', 'off'],
                   default='on',
                   help='test ot_reweight_official after every epoch, for '
                   'the authors\' selection of the best test epoch (reported '
                   'apart, as test-set selection; ~30 %% of its time at 90 '
                   'epochs on CIFAR-10); off: the last epoch only (the '
                   'controls of --official-options)')
    p.add_argument('--stage1-keep-epochs', nargs='+', type=int, default=[],
                   metavar='EPOCH',
                   help='also keep the stage-1 CE checkpoints of these epochs '
                   '(keep_epoch_<E>.pth beside the rolling ones; the zoo '
                   'keeps 160, where the authors\' stage 2 starts, and 200)')
    p.add_argument('--stage2-batch-size', type=int, default=16,
                   help='one batch size for every stage-2 method (the OT '
                   'overhead is compared at equal batch size)')
    p.add_argument('--stage2-whole-network', action='store_true',
                   help='train the whole network in the stage 2 of ce_drw '
                   'and ot_reweight{,_label,_feature}, as the paper text '
                   '(default: the classifier only, which was better on the '
                   'validation split; ot_reweight_official and crt are '
                   'classifier-only anyway)')
    p.add_argument('--stage2-freeze-backbone', action='store_true',
                   help='the default (classifier only), stated explicitly')
    p.add_argument('--stage2-feature-cache', type=int, default=0,
                   metavar='V',
                   help='decoupled stage 2 on cached backbone outputs '
                   '(FeatureCacheHook: V augmented views of the training set '
                   'computed once, eval-mode BatchNorm, epoch e reads view e '
                   'mod V) for every classifier-only stage-2 method except '
                   "ot_reweight_official (its BatchNorm runs in train mode); "
                   '0: off (the Runner as configured, the timing reference)')
    p.add_argument('--stage2-timing-from', metavar='OUT0',
                   help='with --stage2-feature-cache: a finished benchmark '
                   'OUT run with the same stage 1 and stage-2 batch size but '
                   'without the cache; the stage-2 seconds per iteration of '
                   'cached methods are reported from it (the Runner as '
                   'configured: what the OT overhead is measured on), the '
                   'cached ones as stage2_cached_sec_per_iter; without it '
                   'cached methods have no stage2_sec_per_iter')
    p.add_argument('--stage2-lr', type=float, default=0.01,
                   help='alpha: the constant stage-2 SGD lr of ce_drw and '
                   'every ot_reweight method (chosen on the validation '
                   'split; the configs\' 2e-5 is the paper\'s for 40 '
                   'stage-2 epochs after 200)')
    p.add_argument('--ot-lr', type=float, default=1000.,
                   help='beta: the weight learner\'s step size of '
                   'ot_reweight{,_label,_feature} (chosen on the validation '
                   'split; the paper\'s 1e-3 leaves the weights uniform in '
                   'this budget); ot_reweight_official keeps the authors\' '
                   '1e-2')
    p.add_argument('--ot-options', nargs='+', action=DictAction, default={},
                   metavar='KEY=VALUE',
                   help='override OT arguments of ot_reweight'
                   '{,_label,_feature,_global} (not ot_reweight_official): '
                   'OTReweightHook keys, OTImageClassifier keys or its '
                   're-weighter keys, mmengine '
                   '--cfg-options syntax, e.g. learner.init=effective_number '
                   'meta_loss_weight=10 learner.type=ScratchWeights (for '
                   'ablations; a .type= key drops the other arguments of '
                   'that dict, so give it first); learner.lr=X wins over '
                   '--ot-lr')
    p.add_argument('--official-options', nargs='+', action=DictAction,
                   default={}, metavar='KEY=VALUE',
                   help='the same for ot_reweight_official, for the controls '
                   "of the authors' recipe, e.g. learner.lr=0.0 (the OT step "
                   'off), meta_loss_weight=0.0 meta_loss_source=features (no '
                   'meta CE), learner.init=uniform (raw weights 0: meta CE '
                   'alone)')
    p.add_argument('--precision', choices=['auto', 'bf16', 'fp32'],
                   default='auto',
                   help='training precision of every run: bf16 = mmot '
                   'BF16AmpOptimWrapper (bfloat16 autocast, float32 weights; '
                   'the OT step stays float32): 1.8x faster than fp32 on a '
                   'CPU with AVX512-BF16, 10x slower on one without; auto '
                   '(default): bf16 where this CPU has native bfloat16, else '
                   'fp32, and the precision OUT was started with when '
                   'resuming; evaluation is float32 either way')
    p.add_argument('--eval-split', choices=['test', 'val'], default='test',
                   help='evaluate on the balanced test set, or on a '
                   'balanced validation split of --val-per-class images per '
                   'class carved out of the CIFAR-10 training images first '
                   '(the meta set and the long-tailed subset are drawn from '
                   'the rest); for tuning: never tune on the test set')
    p.add_argument('--val-per-class', type=int, default=100)
    p.add_argument('--shot-thresholds', nargs=2, type=int, default=[100, 20],
                   metavar=('MANY', 'FEW'),
                   help='many-shot: > MANY training images, few-shot: < FEW')
    p.add_argument('--num-workers', type=int, default=0,
                   help='dataloader workers (0: data loading in the main '
                   'process, kept out of the timing by mmengine)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch.set_num_threads (default: torch\'s)')
    p.add_argument('--test-batch-size', type=int, default=128)
    p.add_argument('--log-interval', type=int, default=50,
                   help='iterations between mmengine log lines')
    p.add_argument('--quiet', action='store_true',
                   help='mmengine logs warnings only (progress lines stay)')
    p.add_argument('--sinkhorn-bench', action='store_true',
                   help='also run tools/bench_sinkhorn.py (B x K = 16x10, '
                   '128x100, 64x8142 against POT); without --data-root only '
                   'this runs')
    p.add_argument('--sinkhorn-repeats', type=int, default=20)
    p.add_argument('--report-only', action='store_true',
                   help='run nothing: write results.json/md and the plots '
                   'from the result.json files already in OUT; a method '
                   'finished for only some of --seeds is reported over those '
                   'seeds and labelled so')
    args = p.parse_args(argv)
    args.command = 'python tools/benchmark.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if args.methods is None:
        args.methods = list(DEFAULT_METHODS)
    elif args.methods == ['all']:
        args.methods = list(METHODS)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f'--methods: unknown {unknown}; choose from {list(METHODS)} '
                'or "all"')
    args.methods = list(dict.fromkeys(args.methods))
    if args.official_stage2_epochs is None:
        args.official_stage2_epochs = args.stage2_epochs
    if args.official_from_epoch is None:
        args.official_from_epoch = args.stage1_epochs
    if args.official_stage2_epochs < 1:
        p.error('--official-stage2-epochs must be >= 1, got '
                f'{args.official_stage2_epochs}')
    if not 1 <= args.official_from_epoch <= args.stage1_epochs:
        p.error(f'--official-from-epoch must be in [1, --stage1-epochs], got '
                f'{args.official_from_epoch}')
    if args.official_from_epoch != args.stage1_epochs and \
            args.stage1_from is None:
        p.error('--official-from-epoch needs --stage1-from (a zoo that kept '
                'that epoch)')
    args.seeds = list(dict.fromkeys(args.seeds))
    for name in ('stage1_epochs', 'stage2_epochs', 'stage1_batch_size',
                 'stage2_batch_size', 'test_batch_size', 'log_interval',
                 'val_per_class'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1, got '
                    f'{getattr(args, name)}')
    if args.stage1_weight_decay is not None and \
            not args.stage1_weight_decay >= 0:
        p.error(f'--stage1-weight-decay must be >= 0, got '
                f'{args.stage1_weight_decay}')
    if args.imbalance_factor < 1:
        p.error(f'--imbalance-factor must be >= 1, got '
                f'{args.imbalance_factor}')
    for name in ('stage2_lr', 'ot_lr'):
        v = getattr(args, name)
        if not v > 0:
            p.error(f'--{name.replace("_", "-")} must be > 0, got {v}')
    if args.stage2_whole_network and args.stage2_freeze_backbone:
        p.error('--stage2-whole-network and --stage2-freeze-backbone '
                'exclude each other')
    args.stage2_freeze_backbone = not args.stage2_whole_network
    if args.stage2_feature_cache < 0 or (args.stage2_feature_cache
                                         and args.stage2_whole_network):
        p.error('--stage2-feature-cache V needs V >= 0 and a frozen backbone '
                '(not --stage2-whole-network)')
    if args.stage2_timing_from and not args.stage2_feature_cache:
        p.error('--stage2-timing-from is for a run with '
                '--stage2-feature-cache (an uncached run times itself)')
    if args.num_workers < 0:
        p.error(f'--num-workers must be >= 0, got {args.num_workers}')
    many, few = args.shot_thresholds
    if few > many:
        p.error(f'--shot-thresholds: FEW ({few}) must be <= MANY ({many})')
    if args.data_root is None and not args.sinkhorn_bench:
        p.error('--data-root is required (or give --sinkhorn-bench alone)')
    return args


def check_data_root(root):
    if root.endswith(('.tar.gz', '.tgz', '.tar')):
        raise BenchmarkError(
            f'--data-root {root} is an archive: extract it first (tar xzf '
            f'{root} -C /tmp) and pass the folder (/tmp/cifar10-jpg)')
    for split in ('train', 'test'):
        d = osp.join(root, split)
        if not osp.isdir(d):
            raise BenchmarkError(
                f'--data-root {root}: no {split}/ folder (expected '
                f'{split}/<class>/*.jpg, as in cifar10-jpg.tar.gz)')
        classes = sorted(c for c in os.listdir(d)
                         if osp.isdir(osp.join(d, c)))
        if len(classes) != 10:
            raise BenchmarkError(
                f'--data-root {root}: {split}/ has {len(classes)} class '
                'folders, CIFAR-10 needs 10')


# ---------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------
def load_cfg(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(CONFIGS, name))


def find_long_tail(dataset_cfg, what):
    """The ``LongTailDataset`` dict inside (wrappers of) ``dataset_cfg``."""
    node = dataset_cfg
    while node is not None:
        if node.get('type') == 'LongTailDataset':
            return node
        node = node.get('dataset')
    raise BenchmarkError(f'{what}: train_dataloader.dataset holds no '
                         'LongTailDataset, cannot put the JPEG data in')


# where the OT options of a config live (model vs OTReweightHook)
OT_MODEL_KEYS = ('type', 'reweighter', 'ot_features', 'prototype_source',
                 'meta_forward_mode', 'meta_loss_weight', 'meta_loss_source')
OT_HOOK_KEYS = ('start_epoch', 'start_iter', 'stage2_lr', 'stage2_sgd',
                'freeze_backbone', 'freeze_mode', 'meta_loader',
                'meta_refresh_interval', 'save_class_weights')


def check_zoo_command(args, seed):
    """The zoo model of ``seed`` was trained with this run's stage-1
    settings (``ZOO/seed<S>_command.txt``, when the zoo has it): otherwise
    the budget of the results would misreport stage 1."""
    path = osp.join(args.stage1_from, f'seed{seed}_command.txt')
    if not osp.isfile(path):
        return
    words = open(path).read().split()
    wd = args.stage1_weight_decay
    # (flag, this run's value, the zoo's when its command lacks the flag:
    # None = not checked then)
    for flag, value, absent in (
            ('--stage1-epochs', str(args.stage1_epochs), None),
            ('--stage1-schedule', args.stage1_schedule, None),
            ('--stage1-batch-size', str(args.stage1_batch_size), None),
            ('--imbalance-factor', args.imbalance_factor, None),
            ('--stage1-weight-decay', CONFIG_WEIGHT_DECAY if wd is None
             else wd, CONFIG_WEIGHT_DECAY)):
        given = words[words.index(flag) + 1] if flag in words else absent
        if given is not None:
            if isinstance(value, float):
                value, given = f'{value:g}', f'{float(given):g}'
            if given != value:
                raise BenchmarkError(
                    f'--stage1-from: {path} trained with {flag} {given}, '
                    f'this run says {value}: pass the zoo\'s settings')


def set_dotted(node, key, value, what):
    """``node['a']['b'] = value`` for ``key = 'a.b'``."""
    *path, last = key.split('.')
    for k in path:
        if not isinstance(node.get(k), dict):
            raise BenchmarkError(f'{what}: {key}: no dict at {k!r}')
        node = node[k]
    if last == 'type' and isinstance(node, dict):
        # another class: keep only the arguments given with it
        for k in list(node.keys()):
            node.pop(k)
    node[last] = copy.deepcopy(value)


def replace_key(node, key, value):
    """Set every ``key`` of the nested dicts/lists of ``node`` to value."""
    if isinstance(node, dict):
        for k in list(node.keys()):
            if k == key:
                node[k] = copy.deepcopy(value)
            else:
                replace_key(node[k], key, value)
    elif isinstance(node, (list, tuple)):
        for v in node:
            replace_key(v, key, value)


def apply_ot_options(hook, ot, options, flag):
    """``--ot-options`` / ``--official-options``: each KEY=VALUE goes to the
    OT hook, the OT model keys or the re-weighter, by its first part."""
    for key, value in options.items():
        top = key.split('.')[0]
        if top in OT_HOOK_KEYS:
            set_dotted(hook, key, value, flag)
        elif top in OT_MODEL_KEYS:
            set_dotted(ot, key, value, flag)
        else:  # a re-weighter argument (cost, learner, ...)
            set_dotted(ot['reweighter'], key, value, flag)


class Builder:
    """Turns the zoo's configs into the benchmark's runs."""

    def __init__(self, args, counts, classes=None, val_ann_file=None,
                 train_ann_file=None):
        self.args = args
        self.counts = counts
        self.classes = classes
        self.val_ann_file = val_ann_file
        self.train_ann_file = train_ann_file
        self.folder = load_cfg(FOLDER_DATA)

    # -- shared pieces ------------------------------------------------------
    def stage1_schedule(self):
        e1 = self.args.stage1_epochs
        warm = min(5, e1 // 10)
        scheds = []
        if warm:
            scheds.append(dict(type='LinearLR', start_factor=0.2,
                               by_epoch=True, begin=0, end=warm,
                               convert_to_iter_based=True))
        if self.args.stage1_schedule == 'cosine':
            scheds.append(dict(type='CosineAnnealingLR', by_epoch=True,
                               begin=warm, end=e1, T_max=e1 - warm,
                               eta_min=0., convert_to_iter_based=True))
        else:
            scheds.append(dict(type='MultiStepLR', by_epoch=True, begin=0,
                               end=e1, gamma=0.01,
                               milestones=[round(0.8 * e1),
                                           round(0.9 * e1)]))
        return scheds, warm

    def describe_stage1(self):
        e1 = self.args.stage1_epochs
        _, warm = self.stage1_schedule()
        warm_txt = (f'linear warm-up x0.2 -> 1 over {warm} epochs, then '
                    if warm else '')
        if self.args.stage1_schedule == 'cosine':
            return f'{warm_txt}cosine to 0 at epoch {e1}'
        return (f'{warm_txt}x0.01 at epochs {round(0.8 * e1)} and '
                f'{round(0.9 * e1)}')

    def common(self, cfg, name, work_dir, seed, epochs, batch_size):
        a = self.args
        lt = find_long_tail(cfg.train_dataloader.dataset, name)
        folder_train = self.folder.train_dataloader.dataset.dataset
        lt.dataset = copy.deepcopy(folder_train)
        lt.dataset.data_root = a.data_root
        if self.train_ann_file is not None:  # --eval-split val
            read_list(lt.dataset, self.train_ann_file, self.classes)
        lt.meta_pipeline = copy.deepcopy(self.folder.test_pipeline)
        lt.imbalance_factor = a.imbalance_factor
        cfg.data_preprocessor = copy.deepcopy(self.folder.data_preprocessor)
        cfg.model.pop('data_preprocessor', None)
        replace_key(cfg._cfg_dict, 'class_counts', list(self.counts))
        cfg.train_dataloader.batch_size = batch_size
        cfg.train_dataloader.num_workers = a.num_workers
        cfg.train_dataloader.persistent_workers = False
        cfg.train_dataloader.pin_memory = False
        cfg.train_dataloader.collate_fn = dict(type='default_collate')
        if a.precision == 'bf16':
            kind = cfg.optim_wrapper.get('type', 'OptimWrapper')
            if kind not in ('OptimWrapper', 'SkipNonFiniteOptimWrapper'):
                raise BenchmarkError(
                    f'{name}: --precision bf16 replaces an OptimWrapper, '
                    f'the config has {cfg.optim_wrapper.type}')
            # (BF16AmpOptimWrapper skips non-finite updates, as
            # SkipNonFiniteOptimWrapper does)
            cfg.optim_wrapper.type = 'BF16AmpOptimWrapper'
        test = copy.deepcopy(self.folder.val_dataloader)
        test.dataset.data_root = a.data_root
        if a.eval_split == 'val':
            test.dataset.data_prefix = 'train'
            read_list(test.dataset, self.val_ann_file, self.classes)
        test.batch_size = a.test_batch_size
        test.num_workers = a.num_workers
        test.persistent_workers = False
        test.collate_fn = dict(type='default_collate')
        cfg.test_dataloader = test
        cfg.test_cfg = dict()
        cfg.test_evaluator = [self.long_tail_metric()]
        # no look at the test set during training
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs,
                             val_interval=epochs + 1)
        cfg.work_dir = work_dir
        cfg.randomness = dict(seed=seed, deterministic=False)
        cfg.default_hooks.logger = dict(type='LoggerHook',
                                        interval=a.log_interval)
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1,
                                            max_keep_ckpts=2)
        cfg.log_level = 'WARNING' if a.quiet else 'INFO'
        cfg.launcher = 'none'
        cfg.load_from = None
        cfg.resume = False
        return cfg

    # -- runs ---------------------------------------------------------------
    def stage1(self, name, config, work_dir, seed):
        cfg = load_cfg(config)
        cfg = self.common(cfg, name, work_dir, seed, self.args.stage1_epochs,
                          self.args.stage1_batch_size)
        cfg.param_scheduler, _ = self.stage1_schedule()
        if self.args.stage1_weight_decay is not None:
            cfg.optim_wrapper.optimizer.weight_decay = \
                self.args.stage1_weight_decay
        keep = sorted(set(self.args.stage1_keep_epochs))
        if keep and name == STAGE1_DIR:
            # a second CheckpointHook: the rolling one keeps only the last two
            cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
                dict(type='KeepEpochsCheckpointHook', epochs=keep)]
        for hook in cfg.get('custom_hooks', None) or []:
            if hook.get('type') == 'DRWHook':  # recipe: 160 of 200 epochs
                hook.start_epoch = int(round(self.args.stage1_epochs * 0.8))
        return cfg

    def stage2(self, method, work_dir, seed, stage1_ckpt):
        spec = METHODS[method]
        cfg = load_cfg(spec['config'])
        official = method == 'ot_reweight_official'
        e2 = self.args.official_stage2_epochs if official else \
            self.args.stage2_epochs
        cfg = self.common(cfg, method, work_dir, seed, e2,
                          self.args.stage2_batch_size)
        freeze = self.args.stage2_freeze_backbone
        for sched in cfg.get('param_scheduler', None) or []:
            if 'T_max' in sched:  # cRT's cosine over the stage-2 epochs
                sched.end = sched.T_max = e2
        if method == 'crt':
            cfg.model.backbone.init_cfg.checkpoint = stage1_ckpt
            cfg.train_dataloader.sampler.seed = seed
        else:
            cfg.load_from = stage1_ckpt
        if method != 'crt':
            cfg.optim_wrapper.optimizer.lr = self.args.stage2_lr
        if method == 'ce_drw':
            from mmot.engine.hooks.drw_hook import drw_class_weights
            cfg.model.head.loss.class_weight = drw_class_weights(
                self.counts, 'effective_num', float(cfg.cb_beta))
        if method in ('ce_drw', 'balanced_softmax_decoupled'):
            # same trained parameters as ot_reweight's stage 2
            cfg.model.backbone.frozen_stages = 3 if freeze else -1
        if 'hook' in spec:
            src = load_cfg(spec['hook'])
            hook = copy.deepcopy(src.default_hooks.ot_reweight)
            ot = {k: copy.deepcopy(v) for k, v in src.model.items()
                  if k in OT_MODEL_KEYS}
            if 'cost' in spec:
                ot['reweighter'].cost = copy.deepcopy(
                    load_cfg(spec['cost']).model.reweighter.cost)
            hook.start_epoch = 0
            ot['reweighter'].seed = seed
            if official:
                # the authors' stage 2 as their code (points 1-6 of
                # _base_/ot_reweight_cifar_lt_official.py; their alpha 2e-5
                # stays); the data (point 7) stays the zoo's, so every
                # method shares one stage 1 and one meta set
                if self.args.official_test_every_epoch == 'on':
                    self.eval_every_epoch(cfg)
                apply_ot_options(hook, ot, self.args.official_options,
                                 '--official-options')
            else:
                hook.stage2_lr = self.args.stage2_lr
                hook.freeze_backbone = freeze
                if method != 'ot_reweight_global' and \
                        'learner.lr' not in self.args.ot_options:
                    ot['reweighter'].learner.lr = self.args.ot_lr
                apply_ot_options(hook, ot, self.args.ot_options,
                                 '--ot-options')
            for k in OT_MODEL_KEYS:  # the OT model of the method, alone
                cfg.model.pop(k, None)
            cfg.model.update(ot)
            cfg.default_hooks.ot_reweight = hook
        views = self.args.stage2_feature_cache
        if views and freeze and not official:
            if cfg.model.type == 'ImageClassifier':  # the same model, +cache
                cfg.model.type = 'OTImageClassifier'
            cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
                dict(type='FeatureCacheHook', views=views, start_epoch=0,
                     seed=seed, file=osp.join(osp.abspath(self.args.out),
                                              'feature_cache',
                                              f'seed{seed}_views{views}.pth'))]
        return cfg

    def eval_every_epoch(self, cfg):
        """Test after every epoch (the authors' selection of the best test
        epoch is reported beside the last epoch, labelled as test-set
        selection; nothing is selected by it)."""
        cfg.val_dataloader = copy.deepcopy(cfg.test_dataloader)
        cfg.val_evaluator = [self.long_tail_metric()]
        cfg.val_cfg = dict()
        cfg.train_cfg.val_interval = 1

    def eval_cfg(self, train_cfg, checkpoint, work_dir, evaluators):
        cfg = copy.deepcopy(train_cfg)
        cfg.work_dir = work_dir
        cfg.load_from = checkpoint
        cfg.resume = False
        cfg.train_dataloader = cfg.train_cfg = None
        cfg.optim_wrapper = cfg.param_scheduler = None
        cfg.custom_hooks = []
        cfg.default_hooks.pop('ot_reweight', None)
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        cfg.test_evaluator = evaluators
        cfg.model.get('backbone', {}).pop('init_cfg', None)
        return cfg

    def long_tail_metric(self):
        many, few = self.args.shot_thresholds
        return dict(type='LongTailMetric', class_counts=list(self.counts),
                    per_class=True, many_shot_thr=many, few_shot_thr=few)

    def posthoc_metric(self, method):
        metric = copy.deepcopy(
            load_cfg(METHODS[method]['config']).test_evaluator[0])
        many, few = self.args.shot_thresholds
        metric.update(class_counts=list(self.counts), per_class=True,
                      many_shot_thr=many, few_shot_thr=few, report_raw=False)
        return metric


def training_counts(data_root, imbalance_factor, train_ann=None,
                    classes=None):
    """Training class counts and sizes of the LongTailDataset the configs
    build on ``data_root``."""
    from mmengine.registry import DefaultScope

    from mmpretrain.registry import DATASETS
    folder = load_cfg(FOLDER_DATA)
    ds = copy.deepcopy(folder.train_dataloader.dataset)
    ds.dataset.data_root = data_root
    ds.dataset.pipeline = []
    if train_ann is not None:
        read_list(ds.dataset, train_ann, classes)
    ds.imbalance_factor = imbalance_factor
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        lt = DATASETS.build(ds)
    if min(lt.class_counts) < 1:
        raise BenchmarkError(
            f'--imbalance-factor {imbalance_factor} leaves class(es) without '
            f'training images in {data_root}: counts {lt.class_counts}')
    return dict(class_counts=[int(n) for n in lt.class_counts],
                train_images=int(sum(lt.class_counts)),
                meta_per_class=int(lt.meta_per_class),
                meta_images=int(len(lt.meta_indices)),
                source_images=int(lt.num_source_samples),
                lt=lt)


def read_list(dataset_cfg, ann_file, classes):
    """Make a CustomDataset config read the images of ``ann_file`` (a list
    written by :func:`write_val_split`) instead of scanning its folder."""
    dataset_cfg.ann_file = ann_file
    dataset_cfg.metainfo = dict(classes=list(classes))


def write_val_split(source, data_root, per_class, out, seed=2022):
    """Carve a balanced validation split of ``per_class`` images per class
    out of the training folder ``source`` (a CustomDataset): writes
    ``out/val_split.txt`` (the split) and ``out/train_minus_val.txt`` (the
    rest, from which the long-tailed subset and the meta set are then drawn
    as usual), both in mmpretrain's ``ann_file`` format (``<class>/<file>
    <label>`` relative to ``train/``). Returns (classes, train list path,
    val list path)."""
    labels = np.asarray([source.get_data_info(i)['gt_label']
                         for i in range(len(source))])
    rng = np.random.default_rng(seed)
    prefix = osp.join(osp.abspath(data_root), 'train') + os.sep
    is_val = np.zeros(len(labels), dtype=bool)
    classes = list(source.metainfo['classes'])
    for k in range(len(classes)):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 * per_class:
            raise BenchmarkError(
                f'--val-per-class {per_class}: class {k} has only {len(idx)} '
                'training images')
        is_val[rng.choice(idx, per_class, replace=False)] = True
    paths = {}
    for name, keep in (('val_split.txt', is_val),
                       ('train_minus_val.txt', ~is_val)):
        lines = []
        for i in np.flatnonzero(keep):
            img = osp.abspath(source.get_data_info(int(i))['img_path'])
            if not img.startswith(prefix):
                raise BenchmarkError(f'{img} is not under {prefix}')
            lines.append(f'{img[len(prefix):]} {labels[i]}')
        paths[name] = osp.join(out, name)
        with open(paths[name], 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return classes, paths['train_minus_val.txt'], paths['val_split.txt']


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------
def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def timing_from_checkpoint(ckpt):
    """Seconds per training iteration from mmengine's ``IterTimerHook``
    records (``train/time`` - ``train/data_time`` of every iteration, kept
    in the checkpoint's message hub, so resumed runs count every iteration
    once)."""
    import torch
    state = torch.load(ckpt, map_location='cpu')
    scalars = (state.get('message_hub') or {}).get('log_scalars') or {}
    if 'train/time' not in scalars or 'train/data_time' not in scalars:
        raise BenchmarkError(f'{ckpt}: no train/time records of mmengine\'s '
                             'IterTimerHook in the message hub')
    t = np.asarray(scalars['train/time'].data[0], dtype=np.float64)
    d = np.asarray(scalars['train/data_time'].data[0], dtype=np.float64)
    n = min(len(t), len(d))
    compute = t[:n] - d[:n]
    kept = compute[WARMUP_ITERS:] if n > 2 * WARMUP_ITERS else compute
    return dict(
        sec_per_iter=float(kept.mean()),
        sec_per_iter_median=float(np.median(kept)),
        sec_per_iter_p90=float(np.percentile(kept, 90)),
        data_sec_per_iter=float(d[:n].mean()),
        iters=int(n),
        timed_iters=int(len(kept)),
        train_s=float(t[:n].sum()))


def train(cfg, label):
    """Train ``cfg`` (resuming from its work_dir) unless its last
    checkpoint exists; returns (last checkpoint, timing)."""
    from mmengine.runner import Runner

    from mmot.utils.checkpoint import (check_model_matches_checkpoint,
                                       find_resumable_checkpoint)
    work_dir = cfg.work_dir
    done = osp.join(work_dir, TRAIN_DONE)
    if osp.isfile(done):
        info = read_json(done)
        if osp.isfile(info['checkpoint']):
            return info['checkpoint'], info['timing']
    last = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    if not osp.isfile(last):
        os.makedirs(work_dir, exist_ok=True)
        found = find_resumable_checkpoint(work_dir)
        if found is not None:
            log(f'{label}: resuming from {found}')
            cfg.resume, cfg.load_from = True, found
        cfg.experiment_name = f'{label.replace(" ", "_")}_{time.time_ns()}'
        runner = Runner.from_cfg(cfg)
        if cfg.load_from and osp.isfile(cfg.load_from):
            check_model_matches_checkpoint(runner.model, cfg.load_from)
        runner.train()
        del runner
        gc.collect()
    if not osp.isfile(last):
        raise BenchmarkError(f'{label}: training ended without {last}')
    timing = timing_from_checkpoint(last)
    write_json(done, dict(checkpoint=last, timing=timing))
    return last, timing


def zoo_timing(ckpt):
    """Stage-1 timing of a zoo checkpoint (its message hub), or NaNs when
    it holds none."""
    try:
        return timing_from_checkpoint(ckpt)
    except BenchmarkError:
        nan = float('nan')
        return dict(sec_per_iter=nan, sec_per_iter_median=nan,
                    sec_per_iter_p90=nan, data_sec_per_iter=nan, iters=0,
                    timed_iters=0, train_s=nan)


def epoch_metrics(work_dir, key):
    """``{epoch: value}`` of a validation metric from the mmengine
    ``LocalVisBackend`` records of every (resumed) run in ``work_dir``."""
    import glob
    found = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if key in rec:
                    found[int(rec['step'])] = float(rec[key])
    return found


def evaluate(cfg, label):
    """``Runner.test`` of ``cfg`` (its ``load_from`` checkpoint)."""
    from mmengine.runner import Runner

    from mmot.utils.checkpoint import check_model_matches_checkpoint
    cfg.experiment_name = f'{label.replace(" ", "_")}_test_{time.time_ns()}'
    runner = Runner.from_cfg(cfg)
    check_model_matches_checkpoint(runner.model, cfg.load_from)
    metrics = runner.test()
    del runner
    gc.collect()
    return metrics


def pick(metrics, prefix, num_classes):
    """The schema's accuracies (and per-class ones) under ``prefix``."""
    out = {}
    for key, src in ACC_KEYS + (('gmean', 'gmean'), ):
        full = f'{prefix}/{src}'
        if full not in metrics:
            raise BenchmarkError(f'metric {full} missing (got '
                                 f'{sorted(metrics)})')
        out[key] = float(metrics[full])
    out['per_class'] = [
        float(metrics[f'{prefix}/acc_class_{k}']) for k in range(num_classes)
    ]
    return out


class Bench:

    def __init__(self, args):
        self.args = args
        self.out = osp.abspath(args.out)
        self.failed = []
        self.timing = {}  # --stage2-timing-from, read in run()
        self.stage1_failed = {}

    def run_dir(self, seed, name):
        return osp.join(self.out, 'runs', str(seed), name)

    def result_path(self, seed, method):
        return osp.join(self.run_dir(seed, method), RESULT)

    def save_result(self, seed, method, res):
        res = dict(method=method, seed=seed, kind=METHODS[method]['kind'],
                   **res)
        os.makedirs(self.run_dir(seed, method), exist_ok=True)
        write_json(self.result_path(seed, method), res)
        log(f'seed {seed} {method}: top-1 {res["top1"]:.2f} '
            f'(many {res["many"]:.2f}, medium {res["medium"]:.2f}, few '
            f'{res["few"]:.2f}), s/iter {fmt_time(res["sec_per_iter"])}, '
            f'stage-2 s/iter {fmt_time(res["stage2_sec_per_iter"])}')

    # -- the three kinds ----------------------------------------------------
    def stage1(self, seed):
        if seed in self.stage1_failed:
            raise BenchmarkError(f'the stage-1 CE of seed {seed} failed: '
                                 f'{self.stage1_failed[seed]}')
        cfg = self.builder.stage1(STAGE1_DIR, CE_STAGE1,
                                  self.run_dir(seed, STAGE1_DIR), seed)
        if self.args.stage1_from:
            ckpt = self.zoo_checkpoint(seed, self.args.stage1_epochs)
            return cfg, ckpt, zoo_timing(ckpt)
        try:
            return cfg, *train(cfg, f'seed {seed} stage-1 CE')
        except Exception as e:
            self.stage1_failed[seed] = repr(e)
            raise

    def eval_methods(self, seed, methods):
        cfg, ckpt, timing = self.stage1(seed)
        evaluators, prefixes = [], {}
        for m in methods:
            if m == 'ce':
                evaluators.append(self.builder.long_tail_metric())
                prefixes[m] = 'long_tail'
            else:
                metric = self.builder.posthoc_metric(m)
                evaluators.append(metric)
                prefixes[m] = f'posthoc_{metric.method}/long_tail'
        test = self.builder.eval_cfg(cfg, ckpt,
                                     osp.join(self.run_dir(seed, STAGE1_DIR),
                                              'test'), evaluators)
        t0 = time.time()
        metrics = evaluate(test, f'seed {seed} ' + ' '.join(methods))
        for m in methods:
            res = pick(metrics, prefixes[m], len(self.counts))
            self.save_result(
                seed, m,
                dict(res, sec_per_iter=timing['sec_per_iter'],
                     stage2_sec_per_iter=None, stage1_checkpoint=ckpt,
                     stage1_timing=timing, eval_s=time.time() - t0))

    def stage2_method(self, seed, method):
        _, s1_ckpt, s1_timing = self.stage1(seed)
        official = method == 'ot_reweight_official'
        if official and self.args.stage1_from:
            s1_ckpt = self.zoo_checkpoint(seed, self.args.official_from_epoch)
        cfg = self.builder.stage2(method, self.run_dir(seed, method), seed,
                                  s1_ckpt)
        ckpt, timing = train(cfg, f'seed {seed} {method}')
        cached = any(h.get('type') == 'FeatureCacheHook'
                     for h in cfg.get('custom_hooks', None) or [])
        test = self.builder.eval_cfg(
            cfg, ckpt, osp.join(self.run_dir(seed, method), 'test'),
            [self.builder.long_tail_metric()])
        res = pick(evaluate(test, f'seed {seed} {method}'), 'long_tail',
                   len(self.counts))
        if cached:  # timed on cached features: not the Runner's time
            res['stage2_cached_sec_per_iter'] = timing['sec_per_iter']
        if official:
            per_epoch = epoch_metrics(self.run_dir(seed, method),
                                      'long_tail/top1')
            if per_epoch:
                best = max(per_epoch, key=lambda e: (per_epoch[e], -e))
                res.update(top1_best_epoch_test_selection=per_epoch[best],
                           best_test_epoch=best,
                           top1_per_epoch=[per_epoch[e]
                                           for e in sorted(per_epoch)])
        self.save_result(
            seed, method,
            dict(res, sec_per_iter=s1_timing['sec_per_iter'],
                 stage2_sec_per_iter=(None if cached
                                      else timing['sec_per_iter']),
                 stage1_checkpoint=s1_ckpt, checkpoint=ckpt,
                 stage1_timing=s1_timing, stage2_timing=timing))

    def zoo_checkpoint(self, seed, epoch):
        path = osp.join(self.args.stage1_from, f'seed{seed}_epoch{epoch}.pth')
        if not osp.isfile(path):
            raise BenchmarkError(f'--stage1-from: no {path}')
        check_zoo_command(self.args, seed)
        return path

    def own_method(self, seed, method):
        cfg = self.builder.stage1(method, METHODS[method]['config'],
                                  self.run_dir(seed, method), seed)
        ckpt, timing = train(cfg, f'seed {seed} {method}')
        test = self.builder.eval_cfg(
            cfg, ckpt, osp.join(self.run_dir(seed, method), 'test'),
            [self.builder.long_tail_metric()])
        res = pick(evaluate(test, f'seed {seed} {method}'), 'long_tail',
                   len(self.counts))
        self.save_result(
            seed, method,
            dict(res, sec_per_iter=timing['sec_per_iter'],
                 stage2_sec_per_iter=None, checkpoint=ckpt,
                 stage1_timing=timing))

    # -- driver -------------------------------------------------------------
    def check_budget(self, budget):
        """OUT keeps the settings it was started with; a different budget
        would mix incompatible runs. The stage-2 settings may still change
        while OUT holds no stage-2 run (e.g. stage 1 and the own-stage-1
        methods first, stage-2 settings chosen later)."""
        path = osp.join(self.out, 'benchmark.json')
        keys = ('imbalance_factor', 'class_counts', 'stage1', 'stage2',
                'shot_thresholds', 'test_images', 'precision', 'eval_split')
        now = json.loads(json.dumps({k: budget[k] for k in keys}))
        if osp.isfile(path):
            before = read_json(path)
            for k in keys:
                if before.get(k) == now[k]:
                    continue
                if k == 'stage2' and not self.stage2_runs():
                    log('stage-2 settings differ from the ones OUT was '
                        'started with; no stage-2 run yet, taking the new ones')
                    continue
                raise BenchmarkError(
                    f'{self.out} was started with {k} = {before.get(k)}'
                    f', this command gives {now[k]}: use another --out '
                    '(or the original arguments)')
        write_json(path, now)

    def stage2_runs(self):
        """Run folders of decoupled stage-2 methods already in OUT."""
        runs = osp.join(self.out, 'runs')
        found = []
        for seed in (os.listdir(runs) if osp.isdir(runs) else []):
            for m in os.listdir(osp.join(runs, seed)):
                if METHODS.get(m, {}).get('kind') == 'stage2':
                    found.append(f'{seed}/{m}')
        return found

    def budget(self, data):
        a, b = self.args, self.builder
        many, few = a.shot_thresholds
        if a.eval_split == 'val':
            test_images = a.val_per_class * len(self.counts)
            split = (f'a balanced validation split ({a.val_per_class} per '
                     'class) carved out of the CIFAR-10 training images '
                     'before the meta set and the long-tailed subset are '
                     'drawn from the rest (not the test set)')
        else:
            test_images = sum(
                len(os.listdir(osp.join(a.data_root, 'test', c)))
                for c in os.listdir(osp.join(a.data_root, 'test')))
            split = 'the balanced test set'
        alpha, beta = a.stage2_lr, f'{a.ot_lr:g}'
        s2_trained = ('classifier only' if a.stage2_freeze_backbone else
                      'whole network (paper text)')
        return dict(
            dataset='CIFAR-10-LT from the JPEG folders of cifar10-jpg '
            '(mmpretrain CustomDataset + mmot LongTailDataset, profile exp, '
            'LongTailDataset seed 0 for every run seed)',
            data_root=osp.abspath(a.data_root),
            imbalance_factor=a.imbalance_factor,
            class_counts=data['class_counts'],
            train_images=data['train_images'],
            meta_images=data['meta_images'],
            test_images=test_images,
            model='ResNet-32 (mmot CifarResNet, depth 32)',
            stage1=dict(
                config=CE_STAGE1, epochs=a.stage1_epochs,
                batch_size=a.stage1_batch_size,
                optimizer='SGD lr 0.1, momentum 0.9, weight decay ' + (
                    f'{a.stage1_weight_decay:g} (--stage1-weight-decay)'
                    if a.stage1_weight_decay is not None
                    else '2e-4 (the config)'), schedule=b.describe_stage1(),
                zoo=(osp.relpath(osp.abspath(a.stage1_from), REPO)
                     if a.stage1_from else None)),
            stage2=dict(
                epochs=a.stage2_epochs, batch_size=a.stage2_batch_size,
                feature_cache=(f'{a.stage2_feature_cache} view(s) of the '
                               'training set, cached once (FeatureCacheHook)'
                               if a.stage2_feature_cache else None),
                start='last stage-1 CE checkpoint of the same seed',
                ce_drw_and_ot_reweight=f'SGD lr {alpha:g} constant, momentum '
                f'0.9, weight decay 5e-4; {s2_trained}; OT weight step size '
                f'beta {beta}' + (f'; OT hook options {dict(a.ot_options)}'
                                  if a.ot_options else ''),
                ot_reweight_official="the authors' code stage 2 (points 1-6 "
                'of configs/_base_/ot_reweight_cifar_lt_official.py: raw CB '
                'weights in the loss, per-batch OT step, 10 x meta CE '
                'through the network in train mode, BatchNorm in train mode, '
                'Nesterov SGD alpha 2e-5 on the classifier, their Sinkhorn '
                f'rule) for {a.official_stage2_epochs} epochs from stage-1 '
                f'epoch {a.official_from_epoch}; data as the zoo (point 7 '
                'not applied); ' + (
                    'tested every epoch: last epoch reported, best test '
                    'epoch reported apart as test-set selection'
                    if a.official_test_every_epoch == 'on' else
                    'tested after the last epoch only') + (
                    f'; options {dict(a.official_options)}'
                    if a.official_options else ''),
                crt='classifier re-initialised, class-balanced sampler, SGD '
                f'lr 0.01 cosine to 0 over {a.stage2_epochs} epochs, frozen '
                'backbone'),
            own_stage1='focal, balanced_softmax, seesaw, ldam_drw, '
            'class_balanced, logit_adjust_loss: their baseline config, '
            'trained like stage 1 (same epochs, batch, schedule)',
            precision=('bfloat16 autocast (mmot BF16AmpOptimWrapper), float32 '
                       'weights and OT step, float32 evaluation'
                       if a.precision == 'bf16' else 'float32'),
            eval_split=a.eval_split,
            evaluation=f'last checkpoint of every run on {split}; no '
            'validation or checkpoint selection during training; '
            'accuracies in percent; many/medium/few = mean per-class '
            f'accuracy of the classes with > {many} / {few}..{many} / < '
            f'{few} training images (NaN: no such class)',
            shot_thresholds=[many, few],
            timing='sec_per_iter: stage-1 training (the shared CE stage 1 '
            'for ce, post-hoc and stage-2 methods; their own for the '
            'others); stage2_sec_per_iter: decoupled stage 2. Both = mean '
            "over iterations of mmengine IterTimerHook's time - data_time "
            f'(data loading excluded), first {WARMUP_ITERS} iterations of '
            'a run left out' + (
                '; methods on the feature cache: stage2_cached_sec_per_iter '
                + ('(cached), stage2_sec_per_iter from the uncached runs of '
                   f'{a.stage2_timing_from} (the Runner as configured)'
                   if a.stage2_timing_from else 'only')
                if a.stage2_feature_cache else ''),
            aggregate='mean over seeds; *_std = sample standard deviation '
            '(ddof 1) when more than one seed',
            num_workers=a.num_workers,
            torch_threads=None,  # filled in main()
            command=a.command)

    def plan(self):
        runs = []
        for seed in self.args.seeds:
            evals = [m for m in self.args.methods
                     if METHODS[m]['kind'] == 'eval'
                     and not osp.isfile(self.result_path(seed, m))]
            if evals:
                runs.append((seed, 'eval', evals))
            for m in self.args.methods:
                kind = METHODS[m]['kind']
                if kind != 'eval' and not osp.isfile(
                        self.result_path(seed, m)):
                    runs.append((seed, kind, m))
        return runs

    def resolve_precision(self):
        """``--precision auto``: OUT's precision when resuming, else bf16
        only where it is fast
        (:func:`mmot.engine.optim_wrappers.bf16_is_fast`)."""
        a = self.args
        from mmot.engine.optim_wrappers import bf16_is_fast
        fast = bf16_is_fast('cpu')
        if a.precision == 'auto':
            path = osp.join(self.out, 'benchmark.json')
            before = read_json(path).get('precision') if osp.isfile(
                path) else None
            if before is not None:
                a.precision = 'fp32' if before == 'float32' else 'bf16'
                how = 'the precision OUT was started with'
            else:
                a.precision = 'bf16' if fast else 'fp32'
                how = ('this CPU has native bfloat16' if fast else
                       'this CPU has no native bfloat16')
            log(f'--precision auto: {a.precision} ({how})')
        if a.precision == 'bf16' and not fast:
            log('warning: bf16 on a CPU without native bfloat16 is about '
                '10x slower than fp32 (docs/benchmarks/README.md)')

    def run(self):
        a = self.args
        check_data_root(a.data_root)
        os.makedirs(self.out, exist_ok=True)
        self.resolve_precision()
        data = training_counts(a.data_root, a.imbalance_factor)
        classes = train_ann = val_ann = None
        if a.eval_split == 'val':
            classes, train_ann, val_ann = write_val_split(
                data['lt'].dataset, a.data_root, a.val_per_class, self.out)
            data = training_counts(a.data_root, a.imbalance_factor,
                                   train_ann, classes)
        self.counts = data['class_counts']
        self.builder = Builder(a, self.counts, classes, val_ann, train_ann)
        self.budget_info = self.budget(data)
        import torch
        self.budget_info['torch_threads'] = torch.get_num_threads()
        self.check_budget(self.budget_info)
        # read once; a mismatched reference fails here, before any run
        self.timing = self.timing_reference()
        runs = [] if a.report_only else self.plan()
        total = len(a.seeds) * len(a.methods)
        done = total - sum(len(r[2]) if r[1] == 'eval' else 1 for r in runs)
        log(f'{self.out}: IF {a.imbalance_factor}, class counts '
            f'{self.counts}, seeds {a.seeds}, {len(a.methods)} methods; '
            f'{done}/{total} results already there, {len(runs)} runs to do')
        t_start = time.time()
        for i, (seed, kind, what) in enumerate(runs, 1):
            names = what if kind == 'eval' else [what]
            log(f'[{i}/{len(runs)}] seed {seed}: {" ".join(names)} ({kind}, '
                f'{time.time() - t_start:.0f} s so far)')
            try:
                if kind == 'eval':
                    self.eval_methods(seed, what)
                elif kind == 'stage2':
                    self.stage2_method(seed, what)
                else:
                    self.own_method(seed, what)
            except Exception as e:  # noqa: BLE001 (keep the other runs going)
                traceback.print_exc()
                log(f'FAILED seed {seed} {" ".join(names)}: {e}')
                self.failed.append(f'seed {seed} {" ".join(names)}: {e}')
        self.report()

    # -- outputs ------------------------------------------------------------
    def collect(self):
        per_method, missing = {}, []
        for m in self.args.methods:
            rows = []
            for seed in self.args.seeds:
                path = self.result_path(seed, m)
                if osp.isfile(path):
                    rows.append(read_json(path))
                else:
                    missing.append(f'{m} (seed {seed})')
            # every seed, or (--report-only) the seeds that finished
            if len(rows) == len(self.args.seeds) or (
                    rows and self.args.report_only):
                per_method[m] = rows
        return per_method, missing

    def timing_reference(self):
        """``--stage2-timing-from``: {method: uncached stage-2 s/iter} of a
        finished benchmark OUT with the same stage 1 and batch size."""
        ref = self.args.stage2_timing_from
        if not ref:
            return {}
        if not (osp.isfile(osp.join(ref, 'benchmark.json')) and
                osp.isfile(osp.join(ref, 'results.json'))):
            raise BenchmarkError(f'--stage2-timing-from {ref}: no finished '
                                 'benchmark there (benchmark.json, '
                                 'results.json); run it first')
        before = read_json(osp.join(ref, 'benchmark.json'))
        b = self.budget_info
        for key, same in (('stage1', before.get('stage1') == b['stage1']),
                          ('precision',
                           before.get('precision') == b['precision']),
                          ('stage2.batch_size',
                           before['stage2']['batch_size'] ==
                           b['stage2']['batch_size']),
                          ('stage2.feature_cache',
                           before['stage2'].get('feature_cache') is None)):
            if not same:
                raise BenchmarkError(
                    f'--stage2-timing-from {ref}: its {key} differs from '
                    'this run (or it used the feature cache)')
        methods = read_json(osp.join(ref, 'results.json'))['methods']
        return {m: e['stage2_sec_per_iter'] for m, e in methods.items()
                if e.get('stage2_sec_per_iter') is not None}

    def report(self):
        per_method, missing = self.collect()
        methods = {m: dict(aggregate(rows), seeds=[r['seed'] for r in rows])
                   for m, rows in per_method.items()}
        for m, e in methods.items():
            if e.get('stage2_cached_sec_per_iter') is not None and \
                    m in self.timing:
                e['stage2_sec_per_iter'] = self.timing[m]
                e['stage2_timing_from'] = osp.relpath(
                    osp.abspath(self.args.stage2_timing_from), REPO)
        machine = machine_info()
        results = dict(imbalance_factor=self.args.imbalance_factor,
                       seeds=list(self.args.seeds), budget=self.budget_info,
                       machine=machine, methods=methods)
        write_json(osp.join(self.out, 'results.json'), results)
        sinkhorn = osp.join(self.out, 'sinkhorn_bench.md')
        md = results_markdown(results, missing,
                              read_text(sinkhorn) if osp.isfile(sinkhorn)
                              else None)
        with open(osp.join(self.out, 'results.md'), 'w') as f:
            f.write(md)
        with open(osp.join(self.out, 'summary.md'), 'w') as f:
            f.write(summary_markdown(results))
        if per_method:
            plot_per_class(per_method, self.counts,
                           osp.join(self.out, 'per_class_acc.png'))
        ot_runs = {m: [self.run_dir(r['seed'], m) for r in rows]
                   for m, rows in per_method.items()
                   if m.startswith('ot_reweight')}
        if ot_runs:
            plot_ot_weights(ot_runs, osp.join(self.out,
                                              'ot_class_weights.png'))
        log(f'wrote {self.out}/results.json, results.md'
            + (', per_class_acc.png' if per_method else '')
            + (', ot_class_weights.png' if ot_runs else ''))
        if missing:
            log('not finished: ' + ', '.join(missing))


def read_text(path):
    with open(path) as f:
        return f.read()


def aggregate(rows):
    """Mean (and sample std) over seeds of one method's results."""
    out = {}
    optional = [k for k in OPTIONAL_KEYS if all(k in r for r in rows)]
    for key in [k for k, _ in ACC_KEYS] + list(TIME_KEYS) + optional:
        vals = [r[key] for r in rows]
        if any(v is None for v in vals):
            out[key] = None
            if len(rows) > 1:
                out[key + '_std'] = None
            continue
        arr = np.asarray(vals, dtype=np.float64)
        out[key] = float(arr.mean())
        if len(rows) > 1:
            out[key + '_std'] = float(arr.std(ddof=1))
    return out


def machine_info():
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for mod in ('torch', 'mmengine', 'mmpretrain', 'mmcv'):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 (optional package)
            versions[mod] = None
    info = dict(cpu=cpu, cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads(),
                gpu=(torch.cuda.get_device_name(0)
                     if torch.cuda.is_available() else None),
                platform=platform.platform(),
                python=platform.python_version(), **versions)
    try:
        info['load_average'] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def fmt_time(v):
    return '-' if v is None else f'{v:.4f}'


def fmt_acc(entry, key):
    v = entry.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '–'
    s = f'{v:.2f}'
    std = entry.get(key + '_std')
    if std is not None and not math.isnan(std):
        s += f' ± {std:.2f}'
    return s


def paper_gap_lines(results):
    """The table of each method's gap to the OT paper's Table 1 (only at
    imbalance factor 100, the paper's column), as markdown lines."""
    if results['imbalance_factor'] != 100:
        return []
    rows = [(m, PAPER_TABLE1_IF100[m]) for m in results['methods']
            if m in PAPER_TABLE1_IF100
            and results['methods'][m].get('top1') is not None]
    if not rows:
        return []
    lines = ["Against the OT paper's Table 1 (CIFAR-LT-10, IF 100, "
             'ResNet-32; top-1 = 100 - its error):', '',
             '| method | top-1 here | paper | gap | paper row |',
             '|---|---:|---:|---:|---|']
    for m, (paper, row) in rows:
        top1 = results['methods'][m]['top1']
        lines.append(f'| {method_label(results, m, code=False)} | '
                     f'{top1:.2f} | {paper:.2f} | {top1 - paper:+.2f} | '
                     f'{row} |')
    return lines


def method_label(results, name, code=True):
    """The table's name of a method; one finished on fewer seeds than the
    run's (``--report-only``) says which."""
    label = f'`{name}`' if code else name
    seeds = results['methods'][name].get('seeds')
    if seeds is not None and len(seeds) < len(results['seeds']):
        label += (' (seed' + ('s ' if len(seeds) > 1 else ' ')
                  + ', '.join(str(s) for s in seeds) + ' only)')
    return label


def summary_markdown(results):
    """The compact table of the README (``OUT/summary.md``): accuracies
    (mean ± std over seeds) and the stage-2 time per iteration."""
    bs = results['budget']['stage2']['batch_size']
    lines = ['| method | top-1 | many | medium | balanced acc. | '
             f'stage-2 s/iter (batch {bs}) |',
             '|---|---:|---:|---:|---:|---:|']
    for name, e in results['methods'].items():
        t = e.get('stage2_sec_per_iter')
        lines.append(f'| {method_label(results, name)} | '
                     f'{fmt_acc(e, "top1")} | '
                     f'{fmt_acc(e, "many")} | {fmt_acc(e, "medium")} | '
                     f'{fmt_acc(e, "balanced_acc")} | '
                     + ('–' if t is None else f'{t * 1000:.1f} ms') + ' |')
    return '\n'.join(lines) + '\n'


def results_markdown(results, missing=(), sinkhorn=None):
    b, mach = results['budget'], results['machine']
    seeds = results['seeds']
    lines = [
        f'# CIFAR-10-LT benchmark, imbalance factor '
        f'{results["imbalance_factor"]:g}', '',
        f'- command: `{b["command"]}`',
        f'- machine: {mach["cpu"]}, {mach["cpu_count"]} cores, torch '
        f'{mach["torch"]} ({mach["torch_threads"]} threads), '
        f'{"GPU " + mach["gpu"] if mach.get("gpu") else "no GPU"}; '
        f'mmengine {mach["mmengine"]}, mmpretrain {mach["mmpretrain"]}'
        + (f'; load average at the end {mach["load_average"]}'
           if mach.get('load_average') else ''),
        f'- data: {b["train_images"]} training images (class counts '
        f'{b["class_counts"]}), {b["meta_images"]} held-out meta images, '
        f'{b["test_images"]} balanced '
        + ('validation images (NOT the test set)'
           if b.get('eval_split') == 'val' else 'test images'),
        f'- precision: {b.get("precision", "float32")}',
        f'- stage 1: ResNet-32 CE, {b["stage1"]["epochs"]} epochs, batch '
        f'{b["stage1"]["batch_size"]}, {b["stage1"]["optimizer"]}, '
        f'{b["stage1"]["schedule"]}',
        f'- stage 2: {b["stage2"]["epochs"]} epochs, batch '
        f'{b["stage2"]["batch_size"]}, from the last stage-1 checkpoint; '
        f'ce_drw / ot_reweight: {b["stage2"]["ce_drw_and_ot_reweight"]}; '
        f'crt: {b["stage2"]["crt"]}',
        f'- evaluation: {b["evaluation"]}',
        f'- seeds: {", ".join(str(s) for s in seeds)} ('
        + ('mean ± sample std' if len(seeds) > 1 else 'one seed') + ')',
        f'- timing: {b["timing"]}', '',
        '| method | top-1 | many | medium | few | balanced acc. | '
        f'stage-1 s/iter (batch {b["stage1"]["batch_size"]}) | '
        f'stage-2 s/iter (batch {b["stage2"]["batch_size"]}) |',
        '|---|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for name, e in results['methods'].items():
        lines.append(
            f'| {method_label(results, name, code=False)} | '
            f'{fmt_acc(e, "top1")} | {fmt_acc(e, "many")} | '
            f'{fmt_acc(e, "medium")} | {fmt_acc(e, "few")} | '
            f'{fmt_acc(e, "balanced_acc")} | '
            f'{fmt_time(e.get("sec_per_iter"))} | '
            f'{fmt_time(e.get("stage2_sec_per_iter"))} |')
    m = results['methods']
    ot = (m.get('ot_reweight') or {}).get('stage2_sec_per_iter')
    ce = (m.get('ce_drw') or {}).get('stage2_sec_per_iter')
    lines.append('')
    off = m.get('ot_reweight_official') or {}
    if off.get('top1_best_epoch_test_selection') is not None:
        lines.append(
            "ot_reweight_official with the authors' selection (best test "
            'epoch of each run; **test-set selection**, shown only to '
            'compare with their reporting, never used for a claim): top-1 '
            f'{fmt_acc(off, "top1_best_epoch_test_selection")} (mean best '
            f'epoch {off["best_test_epoch"]:.1f}).')
        lines.append('')
    if ot and ce:
        src = (m.get('ot_reweight') or {}).get('stage2_timing_from')
        lines.append(f'OT overhead in stage 2 (same batch size, same trained '
                     f'parameters): ot_reweight / ce_drw seconds per '
                     f'iteration = {ot / ce:.3f}'
                     + (f' (uncached Runner, timed in {src})' if src else '')
                     + '.')
        lines.append('')
    gaps = paper_gap_lines(results)
    if gaps:
        lines += gaps + ['']
    if missing:
        lines += ['Runs not finished (a row labelled "seed(s) … only" '
                  'stands on the others; without --report-only such a '
                  'method is left out): '
                  + ', '.join(missing), '']
    lines += ['Methods:', '']
    for name in m:
        lines.append(f'- `{name}`: {METHODS[name]["desc"]}')
    if sinkhorn:
        lines += ['', '## Sinkhorn step alone (tools/bench_sinkhorn.py)', '',
                  sinkhorn.strip()]
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------
def plot_per_class(per_method, counts, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    order = np.argsort(-np.asarray(counts), kind='stable')
    x = np.arange(len(counts))
    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(counts) + 3), 4.5))
    colors = plt.cm.tab20(np.linspace(0, 1, max(len(per_method), 2)))
    for (name, rows), c in zip(per_method.items(), colors):
        acc = np.mean([r['per_class'] for r in rows], axis=0)
        style = '-' if name.startswith('ot_') else '--'
        ax.plot(x, acc[order], style, marker='o', ms=3, color=c, label=name,
                lw=2 if name == 'ot_reweight' else 1)
    ax.set_xticks(x)
    ax.set_xticklabels([f'{k}\n({counts[k]})' for k in order], fontsize=7)
    ax.set_xlabel('class (training images), head to tail')
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(0, 100)
    ax.set_title('Per-class accuracy by method (mean over seeds)')
    ax.legend(fontsize=7, ncol=2, loc='lower left')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _plot_class_weights_module():
    path = osp.join(REPO, 'tools', 'analysis', 'plot_class_weights.py')
    spec = importlib.util.spec_from_file_location('plot_class_weights', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def plot_ot_weights(ot_runs, out):
    """One panel per OT method: the last stage-2 epoch's class-mean weight
    (mean over seeds) against the class size, with
    ``tools/analysis/plot_class_weights.py``."""
    pcw = _plot_class_weights_module()
    panels = []
    for method, dirs in ot_runs.items():
        curves, counts = [], None
        for d in dirs:
            if osp.isfile(osp.join(d, pcw.WEIGHTS_FILE)):
                counts, c = pcw.read_json(d, 'last')
                curves.append(c[-1][1])
        if curves:
            panels.append((method, counts,
                           [(f'last epoch, mean of {len(curves)} seed(s)',
                             np.nanmean(np.stack(curves), axis=0))]))
    if panels:
        pcw.plot(panels, out)


# ---------------------------------------------------------------------------
# Sinkhorn alone
# ---------------------------------------------------------------------------
def sinkhorn_bench(args):
    """``tools/bench_sinkhorn.py`` (mmot's Sinkhorn vs POT on B x K = 16x10,
    128x100, 64x8142) into ``OUT/sinkhorn_bench.{json,md}``; skipped when
    ``sinkhorn_bench.md`` is already there (resume)."""
    out = osp.abspath(args.out)
    md_path = osp.join(out, 'sinkhorn_bench.md')
    if osp.isfile(md_path):
        log(f'{md_path} exists: Sinkhorn benchmark skipped')
        return
    os.makedirs(out, exist_ok=True)
    opts = ['--repeats', str(args.sinkhorn_repeats)]
    if args.threads is not None:
        opts += ['--threads', str(args.threads)]
    cmd = [sys.executable, osp.join(REPO, 'tools', 'bench_sinkhorn.py')] + \
        opts + ['--out', osp.join(out, 'sinkhorn_bench.json')]
    shown = 'python tools/bench_sinkhorn.py ' + ' '.join(opts)
    log(f'Sinkhorn vs POT: {shown}')
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BenchmarkError('tools/bench_sinkhorn.py failed:\n'
                             + proc.stdout + proc.stderr)
    with open(md_path, 'w') as f:
        f.write(f'Command: `{shown}`\n\n' + proc.stdout.strip() + '\n')
    print(proc.stdout, flush=True)


def main(argv=None):
    args = parse_args(argv)
    import_mmot()
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    try:
        if args.sinkhorn_bench:
            sinkhorn_bench(args)
        if args.data_root is None:
            return 0
        bench = Bench(args)
        bench.run()
    except BenchmarkError as e:
        log(f'error: {e}')
        return 2
    if bench.failed:
        log(f'{len(bench.failed)} run(s) failed:\n  '
            + '\n  '.join(bench.failed))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
