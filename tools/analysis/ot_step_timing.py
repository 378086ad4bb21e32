# Copyright (c) mmot contributors. All rights reserved.
"""What one OT re-weighting step costs, inside the Runner and alone.

Trains a stage-2 config (one with ``OTReweightHook``) for ``--iters``
iterations, timing every call of the hook's :class:`OTReweighter` inside the
Runner and recording its inputs (features, labels, indices) and the
re-weighter's state before the first call. Then replays the recorded calls
through copies of that re-weighter, ``--rounds`` times each:

- ``alone``: the calls back to back (a tight loop);
- ``after backbone``: a forward pass of the model's frozen backbone (eval,
  no gradients) on a batch of the recorded input shape before every call,
  as the Runner does.

Prints the medians (ms, the first ``--skip`` calls of every pass left out).
The replays take the same weight steps as the run (the same inputs from the
same state), so they time the same work. Used for "Cost of the OT step" in
docs/benchmarks/README.md::

    python tools/analysis/ot_step_timing.py \\
        OUT/runs/0/ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-stage2.py \\
        --iters 600 --threads 2
"""
import argparse
import copy
import cProfile
import pstats
import sys
import tempfile
import time

import numpy as np
import torch

import mmot  # noqa: F401

from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmot.ot.reweighter import OTReweighter


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='a config with OTReweightHook (stage 2 '
                   'from its first iteration, e.g. a benchmark run\'s)')
    p.add_argument('--iters', type=int, default=600,
                   help='OT calls to time in the Runner and replay')
    p.add_argument('--skip', type=int, default=50,
                   help='first calls of every pass left out of the median')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='also profile one replay (alone, cProfile) and '
                   'print its N most expensive functions by cumulative '
                   'time')
    p.add_argument('--threads', type=int, help='torch threads')
    p.add_argument('--work-dir', help='default: a temporary folder')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    if args.iters <= args.skip or args.skip < 0 or args.rounds < 1:
        p.error('need --iters > --skip >= 0 and --rounds >= 1')
    return args


class _Stop(Exception):
    pass


class _Recorder:
    """Wraps ``OTReweighter.__call__``: times the calls, keeps their inputs
    and a copy of the re-weighter before the first one."""

    def __init__(self, n):
        self.n, self.calls, self.times, self.snapshot = n, [], [], None
        self.weights = []  # the batch weights the run got

    def __enter__(self):
        self._orig = OTReweighter.__call__
        rec = self

        def call(rw, z, y, idx):
            if rec.snapshot is None:
                rec.snapshot = copy.deepcopy(rw)
            t = time.perf_counter()
            out = rec._orig(rw, z, y, idx)
            rec.times.append(time.perf_counter() - t)
            rec.calls.append((z.detach().clone(), y.clone(), idx.clone()))
            rec.weights.append(out[0].detach().clone())
            return out

        OTReweighter.__call__ = call
        return self

    def __exit__(self, *exc):
        OTReweighter.__call__ = self._orig


class _StopHook(Hook):
    def __init__(self, rec, inputs):
        self.rec, self.inputs = rec, inputs

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if not self.inputs and data_batch is not None:
            data = runner.model.data_preprocessor(data_batch, True)
            self.inputs.append(data['inputs'][:1].clone())
        if len(self.rec.calls) >= self.rec.n:
            raise _Stop


def _median_ms(times, skip):
    return float(np.median(np.asarray(times[skip:]))) * 1e3


def replay(snapshot, calls, before=None):
    """Times ``calls`` through a copy of ``snapshot``; ``before()`` runs
    ahead of every call (untimed). Returns the times and the weights."""
    rw = copy.deepcopy(snapshot)
    times, weights = [], []
    for z, y, idx in calls:
        if before is not None:
            before()
        t = time.perf_counter()
        w, _ = rw(z, y, idx)
        times.append(time.perf_counter() - t)
        weights.append(w)
    return times, weights


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if (cfg.get('default_hooks') or {}).get('ot_reweight') is None:
        sys.exit(f'{args.config}: no OTReweightHook in '
                 'default_hooks.ot_reweight')
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory()
    cfg.work_dir = args.work_dir or tmp.name
    cfg.resume = False
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**9)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None

    inputs = []
    with _Recorder(args.iters) as rec:
        runner = Runner.from_cfg(cfg)
        runner.register_hook(_StopHook(rec, inputs), priority='VERY_LOW')
        try:
            runner.train()
        except _Stop:
            pass
    if len(rec.calls) <= args.skip:
        sys.exit(f'only {len(rec.calls)} OT calls: does stage 2 start within '
                 'the run (OTReweightHook.start_epoch / start_iter)?')
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    backbone = copy.deepcopy(model.backbone).eval().requires_grad_(False)
    x = inputs[0].repeat(len(rec.calls[0][1]), *[1] * (inputs[0].dim() - 1))

    def backbone_forward():  # under the run's autocast (bf16) if any
        with runner.optim_wrapper.optim_context(model), torch.no_grad():
            backbone(x)

    print(f'{len(rec.calls)} OT calls of {args.config} (batch '
          f'{len(rec.calls[0][1])}, {torch.get_num_threads()} threads); '
          f'median ms per call, '
          f'first {args.skip} left out')
    print(f'in the Runner      {_median_ms(rec.times, args.skip):.3f}')
    for r in range(args.rounds):
        alone, weights = replay(rec.snapshot, rec.calls)
        after, _ = replay(rec.snapshot, rec.calls, backbone_forward)
        print(f'round {r}: alone {_median_ms(alone, args.skip):.3f}, after '
              f'the backbone forward {_median_ms(after, args.skip):.3f}')
    diff = max(float((a - b).abs().max())
               for a, b in zip(weights, rec.weights))
    print(f'the replay takes the run\'s weight steps: max |batch weight '
          f'difference| {diff:.1e}')
    if args.profile:
        rw = copy.deepcopy(rec.snapshot)
        prof = cProfile.Profile()
        for z, y, idx in rec.calls:
            prof.enable()
            rw(z, y, idx)
            prof.disable()
        print(f'cProfile of one replay, {len(rec.calls)} calls (the '
              'profiler slows each call):')
        pstats.Stats(prof).sort_stats('cumulative').print_stats(args.profile)
    if tmp is not None:
        tmp.cleanup()


if __name__ == '__main__':
    main()
