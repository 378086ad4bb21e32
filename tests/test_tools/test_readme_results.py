# Copyright (c) mmot contributors. All rights reserved.
"""The README's tables are the committed benchmark runs' results.json,
number for number: CIFAR-10-LT on the lossless data
(docs/benchmarks/cifar10-lt-if100-lossless/), CIFAR-100-LT IF 100 and the
paper's Table 2 at IF 200 in the README's results; the JPEG runs in
docs/benchmarks/cifar10-lt-jpeg.md (the full budget at its top, the quick
budget in its own subsection)."""
import json
import os.path as osp

import pytest
from _runner_utils import ROOT, load_tool

BENCH = osp.join(ROOT, 'docs', 'benchmarks')
SECTION = '## Results'
QUICK = '### Quick budget'


def readme_part(which):
    if which == 'full':
        with open(osp.join(ROOT, 'README.md')) as f:
            readme = f.read()
        return readme.split(SECTION, 1)[1].split('\n## ', 1)[0]
    with open(osp.join(BENCH, 'cifar10-lt-jpeg.md')) as f:
        jpeg = f.read()
    if which == 'jpeg':
        return jpeg.split(QUICK, 1)[0]
    return jpeg.split(QUICK, 1)[1]


@pytest.mark.parametrize('which,run', [('full', 'cifar10-lt-if100-lossless'),
                                       ('jpeg', 'cifar10-lt-if100-full'),
                                       ('full', 'cifar100-lt-if100'),
                                       ('full', 'cifar100-lt-if200-table2'),
                                       ('quick', 'cifar10-lt-if100'),
                                       ('quick', 'cifar10-lt-if100-ldam-quick')])
def test_readme_table_matches_results_json(which, run):
    with open(osp.join(BENCH, run, 'results.json')) as f:
        results = json.load(f)
    assert len(results['seeds']) >= 3
    table = load_tool('benchmark/collect.py').summary(results)
    assert table in readme_part(which)
    # and the committed summary.md is the same table
    with open(osp.join(BENCH, run, 'summary.md')) as f:
        assert f.read() == table
