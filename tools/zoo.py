# Copyright (c) mmot contributors. All rights reserved.
"""The stage-1 model zoo under ``docs/benchmarks/zoo/``: export finished (or
unfinished) stage-1 runs into it, and restore an unfinished run from it.

A stage-1 run of seed S is ``tools/train.py`` on a benchmark's stage-1 config
with ``--work-dir OUT/runs/S/stage1_ce`` (the epochs to keep come from its
KeepEpochsCheckpointHook), tested with ``tools/test.py ... --out
OUT/runs/S/stage1_ce/result.json --out-item metrics``. (The earlier
``tools/benchmark.py`` used the same folder, so its runs export alike.)

A zoo folder holds, per seed S::

    seedS_epochE.pth                         weights-only checkpoints of the
                                              kept epochs (--stage1-keep-epochs
                                              160 200): state_dict + meta +
                                              message hub (timing records)
    seedS_log.txt                            the training log
    seedS_result.json                        the test result of the last epoch
    seedS_command.txt                        the training command
    config.py, metafile.yml                  (shared by the seeds)
    resume/seedS_epoch_N.pth                 the newest full checkpoint of an
                                              unfinished run (one per seed,
                                              replaced at each export; removed
                                              when the run is finished)

Commands::

    python tools/train.py CONFIG --work-dir OUT/runs/S/stage1_ce \
        --cfg-options randomness.seed=S
    python tools/test.py CONFIG OUT/runs/S/stage1_ce/epoch_200.pth \
        --out OUT/runs/S/stage1_ce/result.json --out-item metrics
    # after (or during) the stage-1 run of seed S in OUT
    python tools/zoo.py export --out OUT --seed S --zoo ZOO
    # continue an unfinished run from the zoo's resume checkpoint (and its
    # log, so that the next export keeps the whole history)
    python tools/zoo.py restore --out OUT --seed S --zoo ZOO

A benchmark list (``configs/benchmarks/*/benchmark.yml``) starts its rows
from ``ZOO/seedS_epochE.pth``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import shutil
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RUN = osp.join('runs', '{seed}', 'stage1_ce')
KEEP = re.compile(r'keep_epoch_(\d+)\.pth')
ZOO = re.compile(r'seed(\d+)_epoch(\d+)\.pth')


def run_dir(out, seed):
    return osp.join(out, RUN.format(seed=seed))


def newest_epoch_checkpoint(d):
    found = []
    for p in glob.glob(osp.join(d, 'epoch_*.pth')):
        m = re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    return max(found) if found else (None, None)


def run_finished(d) -> bool:
    """Whether the run in ``d`` trained all its epochs: the checkpoint of
    the last epoch of its dumped config (or tools/benchmark.py's
    ``train_done.json``) is there."""
    if osp.isfile(osp.join(d, 'train_done.json')):
        return True
    from mmengine.config import Config
    for cfg in glob.glob(osp.join(d, '*.py')):
        last = Config.fromfile(cfg).train_cfg.max_epochs
        if osp.isfile(osp.join(d, f'epoch_{last}.pth')):
            return True
    return False


def test_result(out, seed):
    """The run's last-epoch test: ``tools/test.py --out-item metrics`` in
    the run folder, or the earlier tools/benchmark.py result; None if there
    is none yet."""
    d = run_dir(out, seed)
    path = osp.join(d, 'result.json')
    if osp.isfile(path):
        sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))
        from collect import long_tail_values
        with open(path) as f:
            return long_tail_values(json.load(f))
    path = osp.join(out, 'runs', str(seed), 'ce', 'result.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        res = json.load(f)
    return {k: res[k] for k in ('top1', 'many', 'medium', 'few',
                                'balanced_acc', 'per_class', 'sec_per_iter')
            if k in res}


def training_log(d):
    """The mmengine logs of the run (one per resumed start), in order."""
    parts = []
    for log in sorted(glob.glob(osp.join(d, '*', '*.log'))):
        with open(log) as f:
            parts.append(f'# {osp.basename(log)}\n' + f.read())
    return '\n'.join(parts)


LOG_HEADER = re.compile(r'# (\w+)\.log')


def restore_training_log(text, d):
    """Put the logs of ``training_log``'s text back into run folder ``d``
    (``d/STEM/STEM.log`` each), so that the next export of the continued run
    writes the whole history again, not only the new start's log."""
    name, lines = None, []
    parts = []
    for line in text.split('\n'):
        m = LOG_HEADER.fullmatch(line)
        if m:
            if name:
                parts.append((name, lines))
            name, lines = m.group(1), []
        elif name:
            lines.append(line)
    if name:
        parts.append((name, lines))
    for name, lines in parts:
        # (the newline training_log joins the parts with is the one the
        # split consumed before the next header)
        body = '\n'.join(lines)
        dst = osp.join(d, name, f'{name}.log')
        if not osp.isfile(dst):
            os.makedirs(osp.dirname(dst), exist_ok=True)
            with open(dst, 'w') as f:
                f.write(body)


DATA = ('CIFAR-10-LT IF100 (cifar10-jpg JPEG folders, LongTailDataset seed 0, '
        '10 meta images per class held out)')
TEST_DATA = 'CIFAR-10 test (balanced)'


def metafile(zoo, results, data=DATA, test_data=TEST_DATA):
    name = osp.basename(osp.normpath(zoo))
    lines = [
        'Collections:',
        f'  - Name: {name}',
        '    Metadata:',
        f'      Training Data: {data}',
        '      Training Techniques: [SGD with Momentum, Weight Decay]',
        '      Architecture: [CifarResNet-32, GlobalAveragePooling, '
        'LinearClsHead]',
        'Models:',
    ]
    final = max((e for _, e in results), default=None)
    for (seed, epoch), res in sorted(results.items()):
        ckpt = f'seed{seed}_epoch{epoch}.pth'
        lines += [
            # the collection is in the name: two collections of the same
            # recipe (the bf16 zoo and its fp32 control) stay apart in an index
            f'  - Name: {name}_seed{seed}_epoch{epoch}',
            f'    In Collection: {name}',
            '    Metadata:',
            f'      Epochs: {epoch}',
            '      Batch Size: 128',
            f'    Config: {osp.relpath(osp.join(zoo, "config.py"), REPO)}',
            f'    Weights: {osp.relpath(osp.join(zoo, ckpt), REPO)}',
        ]
        # each seed's own command: the seeds of one collection may have
        # been trained by different tools (the earlier benchmark tool)
        cmd_file = osp.join(zoo, f'seed{seed}_command.txt')
        if osp.isfile(cmd_file):
            with open(cmd_file) as f:
                lines.append(f'    Code: {json.dumps(f.read().strip())}')
        if epoch == final and res is not None:
            lines += [
                '    Results:',
                '      - Task: Image Classification',
                f'        Dataset: {test_data}',
                '        Metrics:',
                f'          Top 1 Accuracy: {res["top1"]:.2f}',
                f'          Many-shot: {res["many"]:.2f}',
                f'          Medium-shot: {res["medium"]:.2f}',
            ]
            if res.get('few') is not None and res['few'] == res['few']:
                lines.append(f'          Few-shot: {res["few"]:.2f}')
    return '\n'.join(lines) + '\n'


def git_ignored(paths):
    """The ``paths`` that git would ignore (an ignore rule such as ``*.pth``
    once kept every zoo checkpoint out of the commits); empty outside a git
    work tree or without git."""
    import subprocess
    paths = [p for p in paths if osp.abspath(p).startswith(REPO + os.sep)]
    if not paths:
        return []
    try:
        r = subprocess.run(['git', 'check-ignore', '--', *paths], cwd=REPO,
                           capture_output=True, text=True)
    except OSError:
        return []
    return r.stdout.split() if r.returncode == 0 else []


def export(args):
    import torch

    from mmot.utils.checkpoint import verify_checkpoint
    d = run_dir(args.out, args.seed)
    if not osp.isdir(d):
        raise SystemExit(f'zoo export: no stage-1 run in {d}')
    os.makedirs(args.zoo, exist_ok=True)
    resume = osp.join(args.zoo, 'resume')
    finished = run_finished(d)
    for src in sorted(glob.glob(osp.join(d, 'keep_epoch_*.pth'))):
        m = KEEP.fullmatch(osp.basename(src))
        if m:
            verify_checkpoint(src)
            epoch = int(m.group(1))
            dst = osp.join(args.zoo, f'seed{args.seed}_epoch{epoch}.pth')
            state = torch.load(src, map_location='cpu')
            # weights-only: the model, its meta and the timing records
            torch.save({k: state[k] for k in ('meta', 'state_dict',
                                              'message_hub') if k in state},
                       dst)
            print(f'zoo export: {dst}')
    for old in glob.glob(osp.join(resume, f'seed{args.seed}_*.pth')):
        os.remove(old)
    if not finished:
        epoch, ckpt = newest_epoch_checkpoint(d)
        if ckpt is None:
            raise SystemExit(f'zoo export: {d} has no checkpoint yet')
        verify_checkpoint(ckpt)
        os.makedirs(resume, exist_ok=True)
        dst = osp.join(resume, f'seed{args.seed}_epoch_{epoch}.pth')
        shutil.copy(ckpt, dst)
        print(f'zoo export: unfinished run, resume checkpoint {dst}')
    elif osp.isdir(resume) and not os.listdir(resume):
        os.rmdir(resume)
    with open(osp.join(args.zoo, f'seed{args.seed}_log.txt'), 'w') as f:
        f.write(training_log(d))
    cfgs = sorted(glob.glob(osp.join(d, '*.py')))
    if cfgs:
        with open(cfgs[0]) as f:
            text = f.read()
        # a resumed run dumps its resume source (a local path) and mode:
        # the zoo's config is the recipe, which starts from scratch
        text = re.sub(r'^load_from = .*$', 'load_from = None', text,
                      flags=re.M)
        text = re.sub(r'^resume = .*$', 'resume = False', text, flags=re.M)
        with open(osp.join(args.zoo, 'config.py'), 'w') as f:
            f.write(text)
    command = args.command or (
        f'python tools/train.py {osp.basename(cfgs[0]) if cfgs else "CONFIG"}'
        f' --work-dir OUT/runs/{args.seed}/stage1_ce --cfg-options '
        f'randomness.seed={args.seed}')
    with open(osp.join(args.zoo, f'seed{args.seed}_command.txt'), 'w') as f:
        f.write(command + '\n')
    keep = test_result(args.out, args.seed)
    if keep is not None:
        with open(osp.join(args.zoo, f'seed{args.seed}_result.json'),
                  'w') as f:
            json.dump(keep, f, indent=1)
    results = {}
    for p in glob.glob(osp.join(args.zoo, 'seed*_epoch*.pth')):
        m = ZOO.fullmatch(osp.basename(p))
        if not m:
            continue
        seed, epoch = int(m.group(1)), int(m.group(2))
        rp = osp.join(args.zoo, f'seed{seed}_result.json')
        results[seed, epoch] = json.load(open(rp)) if osp.isfile(rp) \
            else None
    with open(osp.join(args.zoo, 'metafile.yml'), 'w') as f:
        f.write(metafile(args.zoo, results, args.data,
                         args.test_data))
    ignored = git_ignored(
        glob.glob(osp.join(args.zoo, '**', '*.pth'), recursive=True))
    if ignored:
        raise SystemExit('zoo export: git ignores ' + ', '.join(ignored) +
                         ': they would never be committed; add a "!" rule '
                         'for them to .gitignore')


def restore(args):
    d = run_dir(args.out, args.seed)
    found = glob.glob(osp.join(args.zoo, 'resume',
                               f'seed{args.seed}_epoch_*.pth'))
    if not found:
        raise SystemExit(f'zoo restore: no resume checkpoint of seed '
                         f'{args.seed} in {args.zoo}/resume')
    src = found[0]
    name = osp.basename(src)[len(f'seed{args.seed}_'):]
    os.makedirs(d, exist_ok=True)
    shutil.copy(src, osp.join(d, name))
    # an unfinished run past a kept epoch (160) gets that file back
    for z in glob.glob(osp.join(args.zoo, f'seed{args.seed}_epoch*.pth')):
        m = ZOO.fullmatch(osp.basename(z))
        keep = osp.join(d, f'keep_epoch_{m.group(2)}.pth')
        if m and not osp.isfile(keep):
            shutil.copy(z, keep)
    log = osp.join(args.zoo, f'seed{args.seed}_log.txt')
    if osp.isfile(log):
        with open(log) as f:
            restore_training_log(f.read(), d)
    print(f'zoo restore: {osp.join(d, name)}; run the same training '
          'command with --resume to continue')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    for name in ('export', 'restore'):
        s = sub.add_parser(name)
        s.add_argument('--out', required=True,
                       help='the OUT of the stage-1 run (OUT/runs/S/stage1_ce)')
        s.add_argument('--seed', type=int, required=True)
        s.add_argument('--zoo', required=True, help='the zoo folder')
        if name == 'export':
            s.add_argument(
                '--command', default='',
                help='the training command to record; default: tools/train.py '
                'on the run\'s config')
            s.add_argument('--data', default=DATA,
                           help='the training data, for metafile.yml')
            s.add_argument('--test-data', default=TEST_DATA,
                           help='the test set, for metafile.yml')
    args = p.parse_args(argv)
    sys.path.insert(0, REPO)
    export(args) if args.cmd == 'export' else restore(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
