"""tools/benchmark/paired.py: paired per-seed differences between benchmark
rows and the 95 % interval that says whether the seeds resolve them."""
import json

import pytest
from scipy import stats

from _runner_utils import load_tool


def _results(rows):
    return {'methods': {name: {'seeds': {str(s): {'top1': v}
                                         for s, v in per_seed.items()}}
                        for name, per_seed in rows.items()}}


ROWS = {'ref': {0: 50.0, 1: 51.0, 2: 52.0},
        'clear': {0: 50.5, 1: 51.7, 2: 52.3},   # +0.5, +0.7, +0.3
        'noise': {0: 50.1, 1: 50.7, 2: 52.5},   # +0.1, -0.3, +0.5
        'one_seed': {0: 49.0}}


def test_differences_intervals_and_the_t_test_agree():
    tool = load_tool('benchmark/paired.py')
    rows = {r['row']: r for r in tool.paired(_results(ROWS), 'ref')}
    assert set(rows) == {'clear', 'noise', 'one_seed'}
    clear, noise = rows['clear'], rows['noise']
    assert clear['diff'] == pytest.approx(0.5)
    assert clear['sd'] == pytest.approx(0.2)
    assert clear['half_width'] == pytest.approx(4.302653 * 0.2 / 3 ** 0.5,
                                                rel=1e-5)
    assert noise['diff'] == pytest.approx(0.1)
    assert noise['sd'] == pytest.approx(0.4)
    # resolved exactly when a paired t-test rejects equality at 5 %
    for name, r in (('clear', clear), ('noise', noise)):
        p = stats.ttest_rel([ROWS[name][s] for s in (0, 1, 2)],
                            [ROWS['ref'][s] for s in (0, 1, 2)]).pvalue
        assert r['resolved'] == (p < 0.05)
    assert clear['resolved'] and not noise['resolved']
    one = rows['one_seed']
    assert one['seeds'] == ['0'] and one['diff'] == pytest.approx(-1.0)
    assert one['half_width'] is None and one['resolved'] is None


def test_cli_prints_the_table_and_names_a_wrong_reference(tmp_path, capsys):
    tool = load_tool('benchmark/paired.py')
    (tmp_path / 'results.json').write_text(json.dumps(_results(ROWS)))
    tool.main([str(tmp_path), '--reference', 'ref'])
    out = capsys.readouterr().out
    assert '| `clear` | 3 | +0.50 | 0.20 | 0.50 | yes |' in out
    assert '| `noise` | 3 | +0.10 | 0.40 | 0.99 | no |' in out
    assert '| `one_seed` | 1 | -1.00 | – | – | – |' in out
    with pytest.raises(KeyError, match="--reference 'nope'"):
        tool.main([str(tmp_path), '--reference', 'nope'])
