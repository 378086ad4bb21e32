# Copyright (c) mmot contributors. All rights reserved.
"""The cost of a row's stage-2 iteration against another's, measured so that
it can be trusted: ``--pairs`` interleaved pairs of trainings (A, B, A, B,
...) in one run, each one epoch through ``tools/train.py`` as configured
(with ``--options`` on both, e.g. ``custom_hooks=[]`` for the uncached
Runner), every iteration's time logged; per pair the ratio of the median
iteration times (data loading left out: ``time - data_time``, the first
``--skip`` iterations left out); reported: the ratios, their median and
interquartile range, in ``OUT/overhead.json`` (``collect.py`` adds it to
``results.json``).

Example (ot_reweight against ce_drw, uncached, the same trained
parameters: both train the classifier alone from the same zoo model)::

    python tools/benchmark/overhead.py configs/benchmarks/cifar10-lt-if100-lossless/benchmark.yml \\
        --out OUT --baseline ce_drw --method ot_reweight --pairs 5 --seed 0 \\
        --options custom_hooks=[] train_cfg.max_epochs=1
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from launch import Task, load_list  # noqa: E402


def iteration_times(run: str, skip: int) -> list:
    """``time - data_time`` of every logged training iteration of the run
    (LoggerHook interval 1), the first ``skip`` left out."""
    times = []
    for path in sorted(glob.glob(osp.join(run, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'time' in rec and 'data_time' in rec and 'lr' in rec:
                    times.append(rec['time'] - rec['data_time'])
    return times[skip:]


def measure(spec, out, baseline, method, pairs, seed, options, skip=5):
    rows = {r['name']: r for r in spec['rows']}
    for name in (baseline, method):
        if name not in rows or not rows[name].get('train'):
            raise ValueError(f'--baseline/--method: {name!r} is not a '
                             'training row of the list')
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    records = []
    for i in range(pairs):
        medians = {}
        for name in (baseline, method):
            row = dict(rows[name], after=[], options=(
                rows[name].get('options') or []) + list(options) + [
                    'default_hooks.logger.interval=1',
                    'default_hooks.checkpoint.interval=1000'])
            sub = osp.join(out, 'overhead', f'pair{i}')
            task = Task(spec, row, sub, seed)
            proc = subprocess.run(task.cmds[0], env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f'{name} (pair {i}) failed:\n'
                                   f'{proc.stdout[-3000:]}')
            times = iteration_times(task.run, skip)
            if not times:
                raise RuntimeError(f'{name} (pair {i}): no iteration times '
                                   f'logged in {task.run}')
            medians[name] = statistics.median(times)
        records.append(dict(pair=i, baseline_s=medians[baseline],
                            method_s=medians[method],
                            ratio=medians[method] / medians[baseline]))
    ratios = [r['ratio'] for r in records]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else \
        [ratios[0]] * 3
    return dict(baseline=baseline, method=method, seed=seed,
                options=list(options), pairs=records, ratios=ratios,
                median=statistics.median(ratios), iqr=[q[0], q[2]],
                how='interleaved pairs of one-epoch trainings; per pair the '
                'ratio of median per-iteration times (time - data_time, the '
                f'first {skip} iterations left out)')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('list', help='the benchmark list (YAML)')
    p.add_argument('--out', required=True)
    p.add_argument('--baseline', required=True, help='row (e.g. ce_drw)')
    p.add_argument('--method', required=True, help='row (e.g. ot_reweight)')
    p.add_argument('--pairs', type=int, default=5)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--skip', type=int, default=5,
                   help='first iterations of a run left out')
    p.add_argument('--options', nargs='*', default=[],
                   help='--cfg-options for both rows')
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error('--pairs must be >= 1')
    res = measure(load_list(args.list), osp.abspath(args.out),
                  args.baseline, args.method, args.pairs, args.seed,
                  args.options, args.skip)
    with open(osp.join(args.out, 'overhead.json'), 'w') as f:
        json.dump(res, f, indent=1)
    print(f'{args.method} / {args.baseline}: median {res["median"]:.3f}, '
          f'IQR {res["iqr"][0]:.3f}-{res["iqr"][1]:.3f} over '
          f'{len(res["ratios"])} pairs')
    return 0


if __name__ == '__main__':
    sys.exit(main())
