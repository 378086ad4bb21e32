# Copyright (c) mmot contributors. All rights reserved.
"""Collect a benchmark launched by ``tools/benchmark/launch.py``: every row's
test metrics over the seeds into ``OUT/results.json`` (mean, sample std and
each seed's), ``OUT/results.md``, ``OUT/summary.md`` and with ``--plot``
``OUT/per_class_acc.png``.

``results.json``: ``imbalance_factor``, ``seeds``, ``budget`` (the list's
``info``, with the zoo, and the commands), ``machine`` (mmengine's
``collect_env``), ``methods``: per row ``top1``, ``many``, ``medium``,
``few``, ``balanced_acc`` (percent; ``*_std``), ``per_class``, ``seeds``
(each seed's values), ``transductive`` (where the list says), the row's
``info``, and for rows tested during training the best test epoch
(``top1_best_epoch_test_selection``, ``best_test_epoch``: test-set
selection, reported apart, never used to choose anything).

Example::

    python tools/benchmark/collect.py configs/benchmarks/cifar100-lt-if100/benchmark.yml \\
        --out work_dirs/cifar100-lt-if100
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from launch import RESULT, load_list, run_dir  # noqa: E402

KEYS = (('top1', 'top1'), ('many', 'many_shot'), ('medium', 'medium_shot'),
        ('few', 'few_shot'), ('balanced_acc', 'balanced_acc'))


def long_tail_values(metrics: dict) -> dict:
    """The LongTailMetric values of one test (also inside a PostHocMetric;
    its uncorrected ``raw/`` copies left out)."""
    found = {}
    for key, value in metrics.items():
        parts = key.split('/')
        if 'raw' in parts or 'long_tail' not in parts:
            continue
        name = parts[-1]
        if name.startswith('acc_class_'):
            found.setdefault('per_class', {})[int(name[10:])] = value
        else:
            found[name] = value
    out = {k: found.get(src) for k, src in KEYS}
    if out['top1'] is None:
        raise ValueError('no long_tail/top1 in the metrics: the row needs a '
                         'LongTailMetric (or a PostHocMetric wrapping one)')
    if 'per_class' in found:
        pc = found['per_class']
        out['per_class'] = [pc[k] for k in sorted(pc)]
    return out


def best_test_epoch(run: str):
    """(best top-1, its epoch) of the tests run during training, from the
    run's scalars; None without them."""
    best = None
    for path in glob.glob(osp.join(run, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                top1 = rec.get('long_tail/top1')
                if top1 is not None and (best is None or top1 > best[0]):
                    best = (top1, rec.get('step'))
    return best


def _stats(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float('nan'), None
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std


def collect(spec: dict, out: str, seeds=None) -> dict:
    seeds = sorted(seeds if seeds is not None else (
        int(osp.basename(d)) for d in glob.glob(osp.join(out, 'runs', '*'))
        if osp.basename(d).isdigit()))
    methods = {}
    for row in spec['rows']:
        if row.get('dump'):
            continue
        per_seed = {}
        for seed in seeds:
            run = run_dir(out, seed, row['name'])
            path = osp.join(run, RESULT)
            if not osp.isfile(path):
                continue
            with open(path) as f:
                values = long_tail_values(json.load(f))
            best = best_test_epoch(run) if row.get('train') else None
            if best is not None:
                values['top1_best_epoch_test_selection'] = best[0]
                values['best_test_epoch'] = best[1]
            per_seed[seed] = values
        if not per_seed:
            continue
        entry = {}
        for key in [k for k, _ in KEYS] + (
                ['top1_best_epoch_test_selection'] if any(
                    'best_test_epoch' in v for v in per_seed.values())
                else []):
            entry[key], entry[key + '_std'] = _stats(
                [v.get(key) for v in per_seed.values()])
        pcs = [v['per_class'] for v in per_seed.values() if 'per_class' in v]
        if pcs:
            entry['per_class'] = [statistics.fmean(c) for c in zip(*pcs)]
        entry['seeds'] = per_seed
        if 'transductive' in row:
            entry['transductive'] = bool(row['transductive'])
        entry.update(row.get('info') or {})
        if row.get('desc'):
            entry['desc'] = row['desc']
        methods[row['name']] = entry
    info = dict(spec.get('info') or {})
    info.setdefault('stage1', {})['zoo'] = spec.get('zoo', '')
    return dict(imbalance_factor=spec.get('imbalance_factor'),
                seeds=seeds, budget=info, machine=machine(),
                methods=methods)


def machine() -> dict:
    from mmengine.utils.dl_utils import collect_env
    env = collect_env()
    keys = ('sys.platform', 'Python', 'CUDA available', 'GPU 0', 'PyTorch',
            'MMEngine')
    info = {k: str(env[k]) for k in keys if k in env}
    try:  # the CPU model: what the seconds per iteration depend on
        with open('/proc/cpuinfo') as f:
            info['cpu'] = next(line.split(':', 1)[1].strip() for line in f
                               if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info['cpu_count'] = str(os.cpu_count())
    return info


def cell(m: dict, key: str) -> str:
    """``mean ± std`` of ``m[key]``; '–' when there is no value."""
    v, s = m.get(key), m.get(key + '_std')
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '–'
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return f'{v:.2f}'
    return f'{v:.2f} ± {s:.2f}'


def label(results: dict, name: str) -> str:
    """A row's name in a table; one finished on fewer seeds than the
    benchmark's says which, a transductive one says so."""
    text = f'`{name}`'
    seeds = results['methods'][name].get('seeds')
    if seeds is not None and len(seeds) < len(results['seeds']):
        seeds = sorted(int(s) for s in seeds)
        text += (' (seed' + ('s ' if len(seeds) > 1 else ' ') +
                 ', '.join(str(s) for s in seeds) + ' only)')
    if results['methods'][name].get('transductive'):
        text += ' (transductive)'
    return text


TRANSDUCTIVE_NOTE = ('Transductive (each predicts from the whole test set '
                     'at once and assumes its class marginal), apart:')


def summary(results: dict) -> str:
    """The compact table of the README (``OUT/summary.md``): top-1, many,
    medium, balanced accuracy (mean ± std over the seeds), and the stage-2
    time per iteration where a run recorded one.

    A list that labels its rows ``transductive: true/false`` is a
    comparison: the inductive rows (unlabelled ones included) are ranked
    by top-1 in one table, and the transductive rows (they need the whole
    test set) follow in a table of their own, never ranked with the
    others. A list without labels (e.g. an ablation in a paper's order)
    keeps its rows' order in one table."""
    methods = results['methods']
    timed = any('stage2_sec_per_iter' in m for m in methods.values())
    head = '| method | top-1 | many | medium | balanced acc. |'
    rule = '|---|---:|---:|---:|---:|'
    if timed:
        bs = results['budget']['stage2']['batch_size']
        head += f' stage-2 s/iter (batch {bs}) |'
        rule += '---:|'

    def table(names):
        lines = [head, rule]
        for name in names:
            m = methods[name]
            row = f'| {label(results, name)} | ' + ' | '.join(
                cell(m, k) for k in ('top1', 'many', 'medium',
                                     'balanced_acc'))
            if timed:
                t = m.get('stage2_sec_per_iter')
                row += ' | ' + ('–' if t is None else f'{t * 1000:.1f} ms')
            lines.append(row + ' |')
        return '\n'.join(lines) + '\n'

    if not any('transductive' in m for m in methods.values()):
        return table(list(methods))
    inductive = sorted((n for n, m in methods.items()
                        if not m.get('transductive')),
                       key=lambda n: -methods[n]['top1'])  # stable on ties
    transductive = [n for n, m in methods.items() if m.get('transductive')]
    text = table(inductive)
    if transductive:
        text += '\n' + TRANSDUCTIVE_NOTE + '\n\n' + table(
            sorted(transductive, key=lambda n: -methods[n]['top1']))
    return text


def markdown(results: dict) -> str:
    lines = ['| method | top-1 | many | medium | few | balanced acc. | '
             'transductive |', '|---|---:|---:|---:|---:|---:|---|']
    for name, m in results['methods'].items():
        lines.append(f'| `{name}` | ' + ' | '.join(
            cell(m, k) for k, _ in KEYS) +
            f' | {"yes" if m.get("transductive") else ""} |')
    return '\n'.join(lines) + '\n'


def class_counts(spec: dict) -> list:
    """The training class counts of the benchmark, read from the training
    set of its first row's config (with the list's options) by mmot's one
    function, ``training_labels``."""
    from mmengine.config import Config, DictAction

    import mmot  # noqa: F401
    from mmot.datasets.long_tail_dataset import (build_training_dataset,
                                                 training_labels)
    cfg = Config.fromfile(osp.join(spec['configs'], spec['rows'][0]['config']))
    if spec.get('options'):
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *spec['options']]).o)
    dataset = build_training_dataset(cfg.train_dataloader.dataset,
                                     cfg.get('default_scope', 'mmpretrain'))
    return training_labels(dataset)[1].tolist()


def plotted_rows(results: dict) -> list:
    """CE, the best inductive row that is not OT re-weighting, and every OT
    re-weighting row: the rows of the per-class figure."""
    m = {k: v for k, v in results['methods'].items() if 'per_class' in v}
    ot = [k for k in m if k.startswith('ot_') and k not in (
        'ot_posthoc', 'ot_posthoc_inductive')]
    others = [k for k in m if k not in ot and k != 'ce'
              and not m[k].get('transductive')]
    best = max(others, key=lambda k: m[k]['top1'], default=None)
    return [k for k in ['ce', best] + ot if k in m]


def plot_per_class(results: dict, counts: list, path: str) -> None:
    """Test accuracy per class against its training images (classes from
    head to tail, sizes on a log axis behind), one line per plotted row."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    order = sorted(range(len(counts)), key=lambda c: -counts[c])
    fig, ax = plt.subplots(figsize=(9, 4.2))
    size = ax.twinx()
    size.bar(range(len(order)), [counts[c] for c in order], color='0.88',
             width=1.0)
    size.set_yscale('log')
    size.set_ylabel('training images (log)')
    ax.set_zorder(size.get_zorder() + 1)
    ax.patch.set_visible(False)
    for name in plotted_rows(results):
        pc = results['methods'][name]['per_class']
        ax.plot(range(len(order)), [pc[c] for c in order],
                lw=1.2 if len(order) > 20 else 1.6,
                marker=None if len(order) > 20 else 'o', ms=3,
                label=f'{name} ({results["methods"][name]["top1"]:.2f})')
    ax.set_xlabel('class, from head to tail')
    ax.set_ylabel('test accuracy per class (%)')
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc='lower left')
    ax.set_title(f'{len(counts)} classes, imbalance factor '
                 f'{results.get("imbalance_factor")}; mean over seeds '
                 f'{", ".join(str(s) for s in results["seeds"])}', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('list', help='the benchmark list (YAML)')
    p.add_argument('--out', required=True, help='the launch output folder')
    p.add_argument('--seeds', nargs='+', type=int, default=None)
    p.add_argument('--plot', action='store_true',
                   help='also OUT/per_class_acc.png (reads the training '
                   'class counts from the data)')
    args = p.parse_args(argv)
    spec = load_list(args.list)
    results = collect(spec, args.out, args.seeds)
    overhead = osp.join(args.out, 'overhead.json')  # tools/benchmark/overhead.py
    if osp.isfile(overhead):
        with open(overhead) as f:
            results['overhead'] = json.load(f)
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    table = markdown(results)
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(table)
    with open(osp.join(args.out, 'summary.md'), 'w') as f:
        f.write(summary(results))
    if args.plot:
        results['class_counts'] = class_counts(spec)
        plot_per_class(results, results['class_counts'],
                       osp.join(args.out, 'per_class_acc.png'))
        with open(osp.join(args.out, 'results.json'), 'w') as f:
            json.dump(results, f, indent=1)
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
