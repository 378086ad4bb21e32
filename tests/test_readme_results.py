# Copyright (c) mmot contributors. All rights reserved.
"""The README's CIFAR-10-LT table is the committed benchmark run's
results.json (docs/benchmarks/cifar10-lt-if100/), number for number."""
import json
import os.path as osp

from test_benchmark import ROOT, load_tool

RUN = osp.join(ROOT, 'docs', 'benchmarks', 'cifar10-lt-if100')


def test_readme_table_matches_results_json():
    with open(osp.join(RUN, 'results.json')) as f:
        results = json.load(f)
    assert len(results['seeds']) >= 3
    table = load_tool().summary_markdown(results)
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    section = readme.split('## Benchmark on CIFAR-10-LT', 1)[1]
    section = section.split('\n## ', 1)[0]
    assert table in section
    # and the committed summary.md is the same table
    with open(osp.join(RUN, 'summary.md')) as f:
        assert f.read() == table
