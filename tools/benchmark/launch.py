# Copyright (c) mmot contributors. All rights reserved.
"""Launch a benchmark: every row of a benchmark list for every seed, as
``tools/train.py`` / ``tools/test.py`` processes on configs, one torch thread
each, ``--jobs`` at once (as mmpretrain's
``.dev_scripts/benchmark_regression``: a list of configs, one script that
launches, ``collect.py`` that collects).

Resumable: a run whose result file exists is skipped; a training run with a
checkpoint in its folder resumes from it (``--resume``). Every command is
written to ``RUN/command.txt``, its output to ``RUN/launch.log``.

The list (YAML, e.g. ``configs/benchmarks/cifar100-lt-if100/benchmark.yml``)::

    configs: .          # the rows' config folder, relative to the list
    zoo: docs/benchmarks/zoo/<collection>           # stage-1 models (ZOO)
    rows:
      - name: ce                                    # test a zoo model
        config: resnet32_1xb128_cifar100-lt-if100_ce.py
        checkpoint: '{zoo}/seed{seed}_epoch200.pth'
      - name: ce_drw                                # train, then test
        config: resnet32_1xb16_cifar100-lt-if100_ce-drw.py
        train: true
        options: ['load_from={zoo}/seed{seed}_epoch200.pth']
      - name: meta_predictions                      # predictions, no row
        dump: true
        ...
      - name: ot_posthoc_inductive
        after: [meta_predictions]
        options: ['test_evaluator.0.fit_file={runs}/meta_predictions/pred.pkl']

In ``options`` and ``checkpoint``: ``{zoo}``, ``{seed}``, ``{run}`` (this
run's folder) and ``{runs}`` (the seed's folder, ``OUT/runs/SEED``). Every
run gets ``randomness.seed=SEED``, then the list's top-level ``options`` (a
variant of a benchmark: other data, a shorter budget), then ``--options``
of the command line (e.g. the validation split of ``val_split.py``), then
the row's own ``options``; a later one wins. A row with ``seeds: [0]`` runs
for seed 0 only (a test of the one stage-1 model that stage-2 seeds start
from).

Example::

    python tools/benchmark/launch.py configs/benchmarks/cifar100-lt-if100/benchmark.yml \\
        --out work_dirs/cifar100-lt-if100 --seeds 0 1 2 --jobs 2
    python tools/benchmark/collect.py configs/benchmarks/cifar100-lt-if100/benchmark.yml \\
        --out work_dirs/cifar100-lt-if100
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RESULT = 'result.json'  # the metrics of a row's test
PRED = 'pred.pkl'  # the predictions of a dump row


def load_list(path: str) -> dict:
    from mmengine import load
    spec = load(path)
    rows = spec.get('rows') or []
    names = [r.get('name') for r in rows]
    if not rows or len(set(names)) != len(names) or None in names:
        raise ValueError(f'{path}: rows must be a list of uniquely named '
                         'rows')
    for r in rows:
        unknown = set(r) - {'name', 'config', 'train', 'checkpoint',
                            'options', 'after', 'dump', 'transductive',
                            'desc', 'info', 'seeds'}
        if unknown:
            raise ValueError(f'{path}: row {r["name"]}: unknown keys '
                             f'{sorted(unknown)}')
        if not r.get('config'):
            raise ValueError(f'{path}: row {r["name"]} has no config')
        if not r.get('train') and not r.get('checkpoint'):
            raise ValueError(f'{path}: row {r["name"]} needs train: true or '
                             'a checkpoint to test')
        if r.get('after') and r.get('seeds') is not None:
            raise ValueError(f'{path}: row {r["name"]}: `seeds` and `after` '
                             'together are not supported')
        missing = set(r.get('after') or []) - set(names)
        if missing:
            raise ValueError(f'{path}: row {r["name"]}: after names no row '
                             f'{sorted(missing)}')
    configs = spec.get('configs')
    # a list may name the rows of another folder (a variant of a benchmark)
    spec['configs'] = osp.abspath(
        osp.join(osp.dirname(path), configs) if configs else osp.dirname(path))
    return spec


def run_dir(out: str, seed: int, name: str) -> str:
    return osp.join(out, 'runs', str(seed), name)


def done_file(out: str, seed: int, row: dict) -> str:
    return osp.join(run_dir(out, seed, row['name']),
                    PRED if row.get('dump') else RESULT)


def commands(spec: dict, row: dict, out: str, seed: int,
             extra=()) -> list:
    """The processes of one run of ``row``: [train,] test; ``extra``: the
    command line's ``--options``."""
    run = run_dir(out, seed, row['name'])
    fmt = dict(zoo=spec.get('zoo', ''), seed=seed, run=run,
               runs=osp.join(out, 'runs', str(seed)))
    config = osp.join(spec['configs'], row['config'])
    options = [f'randomness.seed={seed}'] + [
        o.format(**fmt) for o in [*(spec.get('options') or []), *extra,
                                  *(row.get('options') or [])]]
    py = [sys.executable]
    cmds = []
    if row.get('train'):
        resume = ['--resume'] if osp.isfile(
            osp.join(run, 'last_checkpoint')) else []
        cmds.append(py + [osp.join(REPO, 'tools', 'train.py'), config,
                          '--work-dir', run, *resume, '--cfg-options',
                          *options])
        checkpoint = 'LAST'  # the training's last checkpoint, when done
    else:
        checkpoint = row['checkpoint'].format(**fmt)
    out_file = done_file(out, seed, row)
    # the test loads `checkpoint`: a load_from option (the training's
    # start) would replace it
    test_options = [o for o in options if not o.startswith('load_from=')]
    cmds.append(py + [
        osp.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir',
        osp.join(run, 'test'), '--out', out_file, '--out-item',
        'pred' if row.get('dump') else 'metrics', '--cfg-options',
        *test_options])
    return cmds


def last_checkpoint(run: str, config: str) -> str:
    """The checkpoint a finished training in ``run`` ended with: the one
    ``last_checkpoint`` names, if it is the last epoch (iteration) of the
    run's dumped ``config``; else the training stopped early and there is
    nothing to test."""
    from mmengine.config import Config
    with open(osp.join(run, 'last_checkpoint')) as f:
        last = f.read().strip()
    loop = Config.fromfile(osp.join(run, osp.basename(config))).train_cfg
    end = f'epoch_{loop.max_epochs}.pth' if loop.get('by_epoch', True) \
        and 'max_epochs' in loop else f'iter_{loop.max_iters}.pth'
    if osp.basename(last) != end:
        raise RuntimeError(f'{run}: the training ended at {last}, not at '
                           f'its last checkpoint {end}: not tested')
    return last


class Task:
    """One (seed, row) run: its commands, one after the other."""

    def __init__(self, spec, row, out, seed, extra=()):
        self.row, self.seed = row, seed
        self.run = run_dir(out, seed, row['name'])
        self.cmds = commands(spec, row, out, seed, extra)
        self.done = osp.isfile(done_file(out, seed, row))
        self.proc = self.log = None
        self.failed = False

    def key(self, name=None):
        return (self.seed, name or self.row['name'])

    def start(self, env):
        cmd = self.cmds.pop(0)
        if 'LAST' in cmd:
            cmd[cmd.index('LAST')] = last_checkpoint(self.run,
                                                     self.row['config'])
        os.makedirs(self.run, exist_ok=True)
        with open(osp.join(self.run, 'command.txt'), 'a') as f:
            f.write(' '.join(cmd) + '\n')
        self.log = open(osp.join(self.run, 'launch.log'), 'a')
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def poll(self):
        """None while running; True when this process ended well."""
        rc = self.proc.poll()
        if rc is None:
            return None
        self.log.close()
        self.proc = None
        if rc != 0:
            self.failed = True
            self.cmds = []
        return rc == 0


def launch(spec: dict, out: str, seeds, jobs: int = 1, only=None,
           dry_run: bool = False, options=()) -> int:
    out = osp.abspath(out)
    rows = [r for r in spec['rows'] if not only or r['name'] in only]
    # a row with `seeds` runs for those of the launched seeds only (e.g. a
    # test of the one stage-1 model the stage-2 seeds start from)
    tasks = [Task(spec, r, out, s, options) for s in seeds for r in rows
             if s in r.get('seeds', seeds)]
    if dry_run:
        for t in tasks:
            state = 'done' if t.done else 'to run'
            print(f'[{state}] seed {t.seed} {t.row["name"]}:')
            for c in t.cmds:
                print('   ', ' '.join(c))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [REPO, os.environ.get('PYTHONPATH', '')]))
    # rows left out by --only count as finished once their results exist
    finished = {(s, r['name']) for s in seeds for r in spec['rows']
                if osp.isfile(done_file(out, s, r))}
    waiting = [t for t in tasks if not t.done]
    selected = {t.key() for t in tasks}
    for t in waiting:
        missing = {t.key(n) for n in t.row.get('after') or []} - finished \
            - selected
        if missing:
            raise RuntimeError(
                f'seed {t.seed} {t.row["name"]} runs after '
                f'{sorted(n for _, n in missing)}, which --only leaves out '
                'and which have no results yet')
    running = []
    while waiting or running:
        for t in list(running):
            ok = t.poll()
            if ok is None:
                continue
            running.remove(t)
            if t.failed:
                print(f'FAILED: seed {t.seed} {t.row["name"]}: see '
                      f'{t.run}/launch.log', flush=True)
            elif t.cmds:
                waiting.insert(0, t)  # its test after its training
            else:
                finished.add(t.key())
                print(f'done: seed {t.seed} {t.row["name"]}', flush=True)
        failed = {t.key() for t in tasks if t.failed}
        for t in list(waiting):
            needs = {t.key(n) for n in t.row.get('after') or []}
            if needs & failed:
                t.failed = True
                waiting.remove(t)
                print(f'skipped: seed {t.seed} {t.row["name"]} (after a '
                      'failed run)', flush=True)
            elif len(running) < jobs and needs <= finished:
                waiting.remove(t)
                try:
                    t.start(env)
                except RuntimeError as e:  # a training that stopped early
                    t.failed, t.cmds = True, []
                    print(f'FAILED: seed {t.seed} {t.row["name"]}: {e}',
                          flush=True)
                    continue
                running.append(t)
        if running:
            time.sleep(0.5)
        elif waiting:  # nothing can start: an `after` cycle
            raise RuntimeError('rows wait on each other: '
                               f'{[t.row["name"] for t in waiting]}')
    return 1 if any(t.failed for t in tasks) else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('list', help='the benchmark list (YAML)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=1,
                   help='runs at once (one torch thread each)')
    p.add_argument('--only', nargs='+', help='these rows only')
    p.add_argument('--dry-run', action='store_true',
                   help='print the commands, run nothing')
    p.add_argument('--options', nargs='+', default=[],
                   help='--cfg-options for every row (before the rows\' own)')
    args = p.parse_args(argv)
    spec = load_list(args.list)
    return launch(spec, args.out, args.seeds, args.jobs, args.only,
                  args.dry_run, args.options)


if __name__ == '__main__':
    sys.exit(main())
