"""The thin benchmark runner (tools/benchmark/launch.py, collect.py) on the
digits smoke benchmark's configs, shortened to a few epochs: trainings and
tests as processes, dependencies between rows, the held-out predictions of
the inductive row, resume, a failing row, and results.json."""
import json
import os
import os.path as osp

import pytest
import yaml

from _runner_utils import ROOT, load_tool

CONFIGS = osp.join(ROOT, 'configs', 'benchmarks', 'sklearn8x8-lt-if20')


def _tool(name):
    return load_tool(f'benchmark/{name}.py')


def _short_list(tmp_path, broken=False):
    """configs/benchmarks/sklearn8x8-lt-if20/benchmark.yml with 2 stage-1 epochs
    and 1 stage-2 epoch."""
    with open(osp.join(CONFIGS, 'benchmark.yml')) as f:
        spec = yaml.safe_load(f)
    spec['configs'] = CONFIGS
    short = ['train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1']
    for row in spec['rows']:
        if row.get('checkpoint'):
            row['checkpoint'] = row['checkpoint'].replace('epoch_30',
                                                          'epoch_2')
        row['options'] = [o.replace('epoch_30', 'epoch_2')
                          for o in row.get('options') or []]
        if row['name'] == 'ce':
            row['options'] = short
        if row['name'] == 'ot_reweight':
            row['options'] += ['train_cfg.max_epochs=1',
                               'default_hooks.checkpoint.interval=1']
    if broken:
        spec['rows'][1]['options'] = ['model.head.num_classes=-1']
    path = tmp_path / 'list.yml'
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_runner_launches_resumes_and_collects(tmp_path):
    launch, collect = _tool('launch'), _tool('collect')
    out = str(tmp_path / 'out')
    spec = launch.load_list(_short_list(tmp_path))
    assert launch.launch(spec, out, [0], jobs=2) == 0
    runs = osp.join(out, 'runs', '0')
    assert osp.isfile(osp.join(runs, 'meta_predictions', 'pred.pkl'))
    for row in ('ce', 'ot_posthoc', 'ot_posthoc_inductive', 'ot_reweight'):
        assert osp.isfile(osp.join(runs, row, 'result.json')), row
    # a trained row is tested on its own last checkpoint, not its start
    test_cmd = open(osp.join(runs, 'ot_reweight', 'command.txt')
                    ).read().splitlines()[-1].split()
    assert test_cmd[test_cmd.index('--work-dir') - 1] == osp.join(
        runs, 'ot_reweight', 'epoch_1.pth')
    assert not any(a.startswith('load_from=') for a in test_cmd)
    # the inductive row was estimated on the meta predictions
    cmd = open(osp.join(runs, 'ot_posthoc_inductive', 'command.txt')).read()
    assert 'fit_file=' + osp.join(runs, 'meta_predictions', 'pred.pkl') \
        in cmd
    results = collect.collect(spec, out)
    m = results['methods']
    assert set(m) == {'ce', 'ot_posthoc', 'ot_posthoc_inductive',
                      'ot_reweight'}
    assert m['ot_posthoc']['transductive'] is True
    assert m['ot_posthoc_inductive']['transductive'] is False
    for v in m.values():
        assert 0 < v['top1'] <= 100 and v['seeds'][0]['top1'] == v['top1']
        assert len(v['per_class']) == 10
    assert results['seeds'] == [0]
    # resumed: everything is done, nothing runs again
    mtime = osp.getmtime(osp.join(runs, 'ce', 'result.json'))
    assert launch.launch(spec, out, [0], jobs=2) == 0
    assert osp.getmtime(osp.join(runs, 'ce', 'result.json')) == mtime
    assert collect.main([_short_list(tmp_path), '--out', out,
                         '--plot']) == 0
    with open(osp.join(out, 'results.json')) as f:
        written = json.load(f)
    assert written['methods']['ce']['top1'] == m['ce']['top1']
    assert '| `ot_posthoc` |' in open(osp.join(out, 'results.md')).read()
    assert '| `ot_posthoc` (transductive) |' in open(
        osp.join(out, 'summary.md')).read()
    # the per-class figure: CE, the best inductive other row, the OT rows;
    # the class sizes read from the digits' long-tailed training set
    assert collect.plotted_rows(results) == ['ce', 'ot_posthoc_inductive',
                                             'ot_reweight']
    counts = written['class_counts']
    assert len(counts) == 10 and counts[0] / counts[-1] >= 19
    assert osp.getsize(osp.join(out, 'per_class_acc.png')) > 10000


def test_runner_resumes_a_stopped_stage2(tmp_path):
    """A stage 2 started from a stage-1 checkpoint (load_from) and stopped
    early resumes its own run: --resume must not continue from load_from,
    whose epoch is past the stage 2's length (it would end at once); and a
    training that did not reach its last epoch is never tested."""
    launch = _tool('launch')
    out = str(tmp_path / 'out')
    spec = launch.load_list(_short_list(tmp_path))
    spec['rows'] = [r for r in spec['rows'] if r['name'] in (
        'ce', 'ot_reweight')]
    assert launch.launch(spec, out, [0]) == 0  # stage 2: 1 epoch
    run = osp.join(out, 'runs', '0', 'ot_reweight')
    os.remove(osp.join(run, 'result.json'))  # as if stopped after epoch 1 of 2
    spec['rows'][1]['options'] = [
        o.replace('max_epochs=1', 'max_epochs=2')
        for o in spec['rows'][1]['options']]
    assert launch.launch(spec, out, [0]) == 0
    cmds = open(osp.join(run, 'command.txt')).read().splitlines()
    assert '--resume' in cmds[-2].split()
    assert cmds[-1].split()[cmds[-1].split().index('--work-dir') - 1] == \
        osp.join(run, 'epoch_2.pth')
    # a training that ended early is reported, not tested
    with open(osp.join(run, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run, 'epoch_1.pth'))
    with pytest.raises(RuntimeError, match='not at its last checkpoint '
                       'epoch_2.pth'):
        launch.last_checkpoint(run, spec['rows'][1]['config'])


def test_runner_failing_row_skips_its_dependents(tmp_path, capsys):
    launch = _tool('launch')
    out = str(tmp_path / 'out')
    spec = launch.load_list(_short_list(tmp_path, broken=True))
    spec['rows'] = [r for r in spec['rows'] if r['name'] in (
        'ce', 'meta_predictions', 'ot_posthoc_inductive')]
    assert launch.launch(spec, out, [0]) == 1
    text = capsys.readouterr().out
    assert 'FAILED: seed 0 meta_predictions' in text
    assert 'skipped: seed 0 ot_posthoc_inductive' in text


def test_runner_bad_list(tmp_path):
    launch = _tool('launch')
    bad = tmp_path / 'bad.yml'
    bad.write_text(yaml.safe_dump(dict(rows=[dict(name='a', config='x.py')])))
    with pytest.raises(ValueError, match='needs train: true or a checkpoint'):
        launch.load_list(str(bad))
    bad.write_text(yaml.safe_dump(dict(rows=[dict(
        name='a', config='x.py', train=True, after=['b'])])))
    with pytest.raises(ValueError, match='after names no row'):
        launch.load_list(str(bad))


def test_overhead_pairs(tmp_path):
    """Interleaved pairs of one-epoch trainings of two rows, per-pair ratios
    of the median iteration times, their median and IQR; collect adds
    them to results.json."""
    overhead, collect = _tool('overhead'), _tool('collect')
    launch = _tool('launch')
    spec = launch.load_list(_short_list(tmp_path))
    ce = [r for r in spec['rows'] if r['name'] == 'ce'][0]
    spec['rows'] = [ce, dict(ce, name='ce_again')]
    out = str(tmp_path / 'out')
    res = overhead.measure(spec, out, 'ce', 'ce_again', 2, 0,
                           ['train_cfg.max_epochs=1'], skip=2)
    assert len(res['ratios']) == 2 and len(res['pairs']) == 2
    assert res['iqr'][0] <= res['median'] <= res['iqr'][1]
    assert all(0.2 < r < 5 for r in res['ratios'])  # the same work
    with open(osp.join(out, 'overhead.json'), 'w') as f:
        json.dump(res, f)
    path = tmp_path / 'list.yml'
    path.write_text(yaml.safe_dump(dict(spec, rows=spec['rows'])))
    assert collect.main([str(path), '--out', out]) == 0
    with open(osp.join(out, 'results.json')) as f:
        assert json.load(f)['overhead']['ratios'] == res['ratios']
    with pytest.raises(ValueError, match='not a training row'):
        overhead.measure(spec, out, 'ce', 'nope', 1, 0, [])


def test_runner_option_order_and_list_folder(tmp_path):
    """Options reach a run in the order seed, the list's, the command
    line's, the row's (a later one wins); a list's `configs` is relative
    to the list (a variant naming another benchmark's rows)."""
    launch = _tool('launch')
    variant = tmp_path / 'variant'
    variant.mkdir()
    path = variant / 'list.yml'
    path.write_text(yaml.safe_dump(dict(
        configs=osp.relpath(CONFIGS, str(variant)),
        options=['train_cfg.max_epochs=3', 'a=list'],
        rows=[dict(name='ce', config='resnet8_1xb32_sklearn8x8-lt-if20_ce.py',
                   train=True, options=['a=row'])])))
    spec = launch.load_list(str(path))
    assert spec['configs'] == CONFIGS
    train, test = launch.commands(spec, spec['rows'][0], str(tmp_path), 4,
                                  ['a=cli'])
    assert train[2] == osp.join(CONFIGS,
                                'resnet8_1xb32_sklearn8x8-lt-if20_ce.py')
    opts = train[train.index('--cfg-options') + 1:]
    assert opts == ['randomness.seed=4', 'train_cfg.max_epochs=3', 'a=list',
                    'a=cli', 'a=row']
    assert test[test.index('--cfg-options') + 1:] == opts


def test_row_seeds_restrict_a_row(tmp_path, capsys):
    """A row with `seeds` runs for those of the launched seeds only."""
    launch = _tool('launch')
    path = tmp_path / 'list.yml'
    path.write_text(yaml.safe_dump(dict(configs=CONFIGS, rows=[
        dict(name='ce', config='resnet8_1xb32_sklearn8x8-lt-if20_ce.py',
             checkpoint='x.pth', seeds=[0]),
        dict(name='ot', config='resnet8_1xb32_sklearn8x8-lt-if20_ce.py',
             train=True)])))
    spec = launch.load_list(str(path))
    assert launch.launch(spec, str(tmp_path / 'o'), [0, 1, 2],
                         dry_run=True) == 0
    runs = [line for line in capsys.readouterr().out.split('\n')
            if line.startswith('[')]
    assert runs == ['[to run] seed 0 ce:', '[to run] seed 0 ot:',
                    '[to run] seed 1 ot:', '[to run] seed 2 ot:']


def test_only_runs_after_rows_done_before(tmp_path):
    """--only a row whose `after` row is left out: it runs when that row's
    results exist, and is refused with a clear error when they do not."""
    launch = _tool('launch')
    path = tmp_path / 'list.yml'
    path.write_text(yaml.safe_dump(dict(configs=CONFIGS, rows=[
        dict(name='a', config='resnet8_1xb32_sklearn8x8-lt-if20_ce.py',
             checkpoint='x.pth'),
        dict(name='b', config='resnet8_1xb32_sklearn8x8-lt-if20_ce.py',
             checkpoint='x.pth', after=['a'])])))
    spec = launch.load_list(str(path))
    out = str(tmp_path / 'o')
    with pytest.raises(RuntimeError, match=r"runs after \['a'\], which "
                       '--only leaves out'):
        launch.launch(spec, out, [0], only=['b'])
    done = osp.join(out, 'runs', '0', 'a', 'result.json')
    os.makedirs(osp.dirname(done))
    open(done, 'w').write('{}')
    spec['rows'][1]['config'] = 'missing.py'  # so that its run fails fast
    assert launch.launch(spec, out, [0], only=['b']) == 1  # it ran
    assert osp.isfile(osp.join(out, 'runs', '0', 'b', 'launch.log'))


def test_summary_ranks_inductive_rows_and_sets_transductive_apart():
    """A list that labels its rows: the inductive rows (unlabelled ones
    too) ranked by top-1, the transductive ones in a table of their own;
    a list without labels keeps its order."""
    collect = _tool('collect')

    def row(top1, **kw):
        return dict(top1=top1, many=top1, medium=top1, balanced_acc=top1,
                    **kw)

    results = dict(seeds=[0], methods=dict(
        ce=row(70.0), ot_posthoc=row(80.0, transductive=True),
        crt=row(75.0, transductive=False), otlm=row(79.0, transductive=True),
        ot_reweight=row(72.0)))

    def names(table):
        return [line.split('`')[1] for line in table.splitlines()
                if line.startswith('| `')]

    text = collect.summary(results)
    inductive, transductive = text.split(collect.TRANSDUCTIVE_NOTE)
    assert names(inductive) == ['crt', 'ot_reweight', 'ce']
    assert names(transductive) == ['ot_posthoc', 'otlm']
    assert '| `otlm` (transductive) | 79.00 |' in transductive
    for m in results['methods'].values():
        m.pop('transductive', None)
    plain = collect.summary(results)
    assert collect.TRANSDUCTIVE_NOTE not in plain
    assert names(plain) == list(results['methods'])
