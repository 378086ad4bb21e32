# Copyright (c) mmot contributors. All rights reserved.
"""Which differences between a benchmark's rows its seeds can resolve.

Reads ``OUT/results.json`` (``collect.py``) and compares every row with a
reference row seed by seed: rows of one seed share the stage-1 model, the
feature cache and the meta set, so their difference is paired. For each row
it prints the mean paired difference in ``--metric`` (default top-1), the
sample std of the per-seed differences, and the half-width of its 95 %
confidence interval (Student's t with n - 1 degrees of freedom): the
smallest difference these seeds resolve. A difference is "resolved" when the
interval leaves out 0 (a paired t-test at 5 %). Rows with fewer than two
seeds in common with the reference are listed without an interval.

Example (the paper's Table 2 rows against its combined-cost row)::

    python tools/benchmark/paired.py docs/benchmarks/cifar100-lt-if200-table2 \\
        --reference ot_combined_prototype
"""
import argparse
import json
import math
import os.path as osp
import statistics

from scipy import stats


def paired(results: dict, reference: str, metric: str = 'top1') -> list:
    """One dict per row other than ``reference``: ``row``, ``seeds`` (in
    common), ``diff`` (mean of row - reference), ``sd`` (sample std of the
    per-seed differences), ``half_width`` (95 % CI) and ``resolved``;
    ``sd``/``half_width``/``resolved`` are None with fewer than 2 seeds."""
    methods = results['methods']
    if reference not in methods:
        raise KeyError(f'--reference {reference!r} is not a row of the '
                       f'results: {sorted(methods)}')
    ref = methods[reference]['seeds']
    out = []
    for name, entry in methods.items():
        if name == reference:
            continue
        seeds = sorted(set(entry['seeds']) & set(ref), key=int)
        d = [entry['seeds'][s][metric] - ref[s][metric] for s in seeds]
        rec = dict(row=name, seeds=seeds,
                   diff=statistics.fmean(d) if d else math.nan,
                   sd=None, half_width=None, resolved=None)
        if len(d) >= 2:
            rec['sd'] = statistics.stdev(d)
            rec['half_width'] = (stats.t.ppf(0.975, len(d) - 1) * rec['sd']
                                 / math.sqrt(len(d)))
            rec['resolved'] = abs(rec['diff']) > rec['half_width']
        out.append(rec)
    return out


def to_markdown(rows: list, reference: str, metric: str) -> str:
    lines = [f'| row | seeds | {metric} − `{reference}` | sd of the '
             'differences | 95 % CI half-width | resolved |',
             '| --- | ---: | ---: | ---: | ---: | --- |']
    for r in rows:
        num = (lambda v: '–' if v is None else f'{v:.2f}')
        res = '–' if r['resolved'] is None else (
            'yes' if r['resolved'] else 'no')
        lines.append(f"| `{r['row']}` | {len(r['seeds'])} | "
                     f"{r['diff']:+.2f} | {num(r['sd'])} | "
                     f"{num(r['half_width'])} | {res} |")
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('out', help='a benchmark folder with results.json')
    p.add_argument('--reference', required=True,
                   help='the row the others are compared with')
    p.add_argument('--metric', default='top1',
                   help='a per-seed value of results.json (top1, many, ...)')
    args = p.parse_args(argv)
    with open(osp.join(args.out, 'results.json')) as f:
        results = json.load(f)
    print(to_markdown(paired(results, args.reference, args.metric),
                      args.reference, args.metric))


if __name__ == '__main__':
    main()
