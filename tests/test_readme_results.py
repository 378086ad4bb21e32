# Copyright (c) mmot contributors. All rights reserved.
"""The README's CIFAR-10-LT tables are the committed benchmark runs'
results.json, number for number: the full budget
(docs/benchmarks/cifar10-lt-if100-full/) opens the benchmark section, the
quick budget (docs/benchmarks/cifar10-lt-if100/) has its own subsection."""
import json
import os.path as osp

import pytest
from test_benchmark import ROOT, load_tool

BENCH = osp.join(ROOT, 'docs', 'benchmarks')
SECTION = '## Benchmark on CIFAR-10-LT'
QUICK = '### Quick budget'


def readme_part(which):
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    section = readme.split(SECTION, 1)[1].split('\n## ', 1)[0]
    full, quick = section.split(QUICK, 1)
    return full if which == 'full' else quick


@pytest.mark.parametrize('which,run', [('full', 'cifar10-lt-if100-full'),
                                       ('quick', 'cifar10-lt-if100'),
                                       ('quick', 'cifar10-lt-if100-ldam-quick')])
def test_readme_table_matches_results_json(which, run):
    with open(osp.join(BENCH, run, 'results.json')) as f:
        results = json.load(f)
    assert len(results['seeds']) >= 3
    table = load_tool().summary_markdown(results)
    assert table in readme_part(which)
    # and the committed summary.md is the same table
    with open(osp.join(BENCH, run, 'summary.md')) as f:
        assert f.read() == table
