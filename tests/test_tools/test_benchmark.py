# Copyright (c) mmot contributors. All rights reserved.
"""tools/benchmark.py end to end on a tiny subset of the real CIFAR-10 JPEGs
(the ``cifar_jpg`` fixture of _runner_utils.py: 30 training / 10 test
images per class): one stage-1 CE, a decoupled OT stage 2 and a post-hoc
correction, the outputs' schema, then resuming the same OUT."""
import importlib.util
import json
import math
import os
import os.path as osp
import re
import time

import pytest
import torch
from _runner_utils import TARBALL, cifar_jpg  # noqa: F401 (fixture)

from mmot.datasets.long_tail_dataset import long_tail_counts

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.skipif(
    not osp.isfile(TARBALL),
    reason=f'the CIFAR-10 JPEGs are not available ({TARBALL} is absent)')

METHODS = ['ce', 'ot_reweight', 'ot_posthoc']
ENTRY_KEYS = {'top1', 'many', 'medium', 'few', 'balanced_acc',
              'sec_per_iter', 'stage2_sec_per_iter', 'seeds'}
ACC_KEYS = ('top1', 'many', 'medium', 'few', 'balanced_acc')
TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


def load_tool(name='benchmark.py'):
    path = osp.join(ROOT, 'tools', name)
    spec = importlib.util.spec_from_file_location(
        'mmot_' + name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def argv(data_root, out, *extra):
    return ['--data-root', data_root, '--imbalance-factor', '4', '--out',
            out, '--stage1-epochs', '1', '--stage2-epochs', '1',
            '--methods', *METHODS, '--seeds', '0', '--stage1-batch-size',
            '32', '--stage2-batch-size', '16', '--test-batch-size', '50',
            '--threads', '1', '--quiet', *extra]


def train_log_dirs(run_dir):
    """The timestamped log folders the Runner makes for each training."""
    return sorted(d for d in os.listdir(run_dir) if TIMESTAMP.match(d))


def test_benchmark_outputs_and_resume(cifar_jpg, tmp_path,  # noqa: F811
                                      keep_threads):
    tool = load_tool()
    out = str(tmp_path / 'out')
    t0 = time.time()
    assert tool.main(argv(cifar_jpg, out)) == 0
    t_first = time.time() - t0

    with open(osp.join(out, 'results.json')) as f:
        res = json.load(f)
    assert set(res) == {'imbalance_factor', 'seeds', 'budget', 'machine',
                        'methods'}
    assert res['imbalance_factor'] == 4 and res['seeds'] == [0]
    counts = long_tail_counts(20, 10, 4)  # 30 per class - 10 meta
    budget = res['budget']
    assert budget['class_counts'] == counts
    assert budget['train_images'] == sum(counts)
    assert budget['test_images'] == 100
    assert budget['stage1']['epochs'] == 1
    assert budget['stage2']['epochs'] == 1
    assert budget['stage2']['batch_size'] == 16
    assert budget['command'].startswith('python tools/benchmark.py ')
    assert res['machine']['torch_threads'] == 1
    assert list(res['methods']) == METHODS
    for name, entry in res['methods'].items():
        assert set(entry) == ENTRY_KEYS, name  # one seed: no *_std
        for key in ACC_KEYS:
            v = entry[key]
            assert isinstance(v, float), (name, key)
            assert math.isnan(v) or 0 <= v <= 100, (name, key, v)
        assert entry['sec_per_iter'] > 0

    # the stage-1 model is shared: same stage-1 timing for all three
    s1 = {e['sec_per_iter'] for e in res['methods'].values()}
    assert len(s1) == 1
    assert res['methods']['ot_reweight']['stage2_sec_per_iter'] > 0
    assert res['methods']['ce']['stage2_sec_per_iter'] is None
    assert res['methods']['ot_posthoc']['stage2_sec_per_iter'] is None

    # the schema's keys are the per-class accuracies grouped by class size
    # (10 test images per class): class 0 (20 images) is medium-shot, the
    # others (< 20) few-shot, none many-shot
    for name in METHODS:
        with open(osp.join(out, 'runs', '0', name, 'result.json')) as f:
            run = json.load(f)
        per_class = run['per_class']
        assert len(per_class) == 10
        entry = res['methods'][name]
        assert math.isnan(entry['many'])
        assert entry['medium'] == pytest.approx(per_class[0])
        assert entry['few'] == pytest.approx(sum(per_class[1:]) / 9)
        assert entry['top1'] == pytest.approx(sum(per_class) / 10)

    with open(osp.join(out, 'results.md')) as f:
        md = f.read()
    assert budget['command'] in md
    assert 'AMD' in md or 'cores' in md
    assert 'stage-2 s/iter (batch 16)' in md
    for name in METHODS:
        assert f'| {name} |' in md
    with open(osp.join(out, 'summary.md')) as f:
        summary = f.read().splitlines()
    assert [r.split('|')[1].strip() for r in summary[2:]] == \
        [f'`{m}`' for m in res['methods']]
    top1 = res['methods']['ce']['top1']
    assert f'| `ce` | {top1:.2f} |' in summary[2]
    for png in ('per_class_acc.png', 'ot_class_weights.png'):
        with open(osp.join(out, png), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n', png
    ot_dir = osp.join(out, 'runs', '0', 'ot_reweight')
    with open(osp.join(ot_dir, 'ot_class_weights.json')) as f:
        assert json.load(f)['class_counts'] == counts

    # run again: every result is there, nothing is trained or evaluated
    result_files = {
        m: osp.join(out, 'runs', '0', m, 'result.json') for m in METHODS
    }
    mtimes = {m: os.stat(p).st_mtime_ns for m, p in result_files.items()}
    logs = train_log_dirs(ot_dir)
    t0 = time.time()
    assert tool.main(argv(cifar_jpg, out)) == 0
    t_again = time.time() - t0
    assert t_again < t_first / 2, (t_again, t_first)
    assert {m: os.stat(p).st_mtime_ns
            for m, p in result_files.items()} == mtimes
    assert train_log_dirs(ot_dir) == logs
    with open(osp.join(out, 'results.json')) as f:
        again = json.load(f)
    assert json.dumps(again['methods']) == json.dumps(res['methods'])

    # a run whose last checkpoint exists but whose result is lost is
    # evaluated from the checkpoint, with its timing, without retraining
    os.remove(result_files['ot_reweight'])
    os.remove(osp.join(ot_dir, 'train_done.json'))
    assert tool.main(argv(cifar_jpg, out)) == 0
    assert train_log_dirs(ot_dir) == logs
    with open(result_files['ot_reweight']) as f:
        run = json.load(f)
    assert run['stage2_sec_per_iter'] == pytest.approx(
        res['methods']['ot_reweight']['stage2_sec_per_iter'])

    # --report-only with a seed not run yet: nothing runs, each method is
    # reported over its finished seeds and labelled so
    assert tool.main(argv(cifar_jpg, out, '--seeds', '0', '1',
                          '--report-only')) == 0
    assert not osp.exists(osp.join(out, 'runs', '1'))
    assert train_log_dirs(ot_dir) == logs
    with open(osp.join(out, 'results.json')) as f:
        partial = json.load(f)
    assert partial['seeds'] == [0, 1]
    assert list(partial['methods']) == METHODS
    for name, entry in partial['methods'].items():
        assert entry['seeds'] == [0]
        assert entry['top1'] == res['methods'][name]['top1']
    with open(osp.join(out, 'summary.md')) as f:
        assert '| `ot_reweight` (seed 0 only) |' in f.read()
    with open(osp.join(out, 'results.md')) as f:
        md = f.read()
    assert '| ot_reweight (seed 0 only) |' in md
    assert 'ot_reweight (seed 1)' in md  # listed as not finished

    # the same OUT with another budget is refused before anything runs
    assert tool.main(argv(cifar_jpg, out, '--stage2-epochs', '2')) == 2
    assert train_log_dirs(ot_dir) == logs


def test_benchmark_val_split_is_carved_out_of_training(cifar_jpg, tmp_path,  # noqa: F811
                                                       keep_threads):
    """--eval-split val: a balanced split carved out of the training folder
    first; the long-tailed subset and the meta set never contain it and the
    test folder is never read for evaluation."""
    tool = load_tool()
    out = str(tmp_path / 'val')
    args = argv(cifar_jpg, out, '--eval-split', 'val', '--val-per-class', '5')
    args[args.index('--methods') + 1:args.index('--seeds')] = ['ce']
    assert tool.main(args) == 0
    with open(osp.join(out, 'val_split.txt')) as f:
        val = [line.split() for line in f.read().split('\n') if line]
    with open(osp.join(out, 'train_minus_val.txt')) as f:
        rest = [line.split() for line in f.read().split('\n') if line]
    assert len(val) == 50 and len(rest) == 250  # 30 per class in the fixture
    assert sorted(int(k) for _, k in val) == sorted(list(range(10)) * 5)
    assert not {p for p, _ in val} & {p for p, _ in rest}
    for p, k in val:  # class folder matches the label
        assert osp.isfile(osp.join(cifar_jpg, 'train', p))
    data = tool.training_counts(cifar_jpg, 4,
                                osp.join(out, 'train_minus_val.txt'),
                                data_classes(cifar_jpg))
    lt = data['lt']
    used = {osp.relpath(lt.dataset.get_data_info(int(i))['img_path'],
                        osp.join(cifar_jpg, 'train'))
            for i in list(lt.train_indices) + list(lt.meta_indices)}
    assert not used & {p for p, _ in val}
    with open(osp.join(out, 'results.json')) as f:
        res = json.load(f)
    assert res['budget']['eval_split'] == 'val'
    assert res['budget']['test_images'] == 50
    assert res['budget']['class_counts'] == long_tail_counts(15, 10, 4)
    with open(osp.join(out, 'results.md')) as f:
        assert 'NOT the test set' in f.read()
    # no stage-2 run in OUT yet: other stage-2 settings are taken
    assert tool.main(args + ['--stage2-lr', '0.01']) == 0
    with open(osp.join(out, 'benchmark.json')) as f:
        assert 'lr 0.01 ' in f.read()
    # an OUT keeps its split: the test split on it is refused
    assert tool.main(argv(cifar_jpg, out)) == 2


def data_classes(root):
    return sorted(os.listdir(osp.join(root, 'train')))


@pytest.mark.parametrize('fast', [True, False])
def test_precision_auto(tmp_path, monkeypatch, fast):
    """--precision auto: bf16 only on a CPU with native bfloat16; a resumed
    OUT keeps the precision it was started with; an explicit choice stays."""
    tool = load_tool()
    tool.import_mmot()
    from mmot.engine import optim_wrappers
    monkeypatch.setattr(optim_wrappers, 'bf16_is_fast', lambda dev: fast)

    def resolved(precision, out):
        args = tool.parse_args(['--data-root', str(tmp_path), '--out',
                                str(out)] + (['--precision', precision]
                                             if precision else []))
        tool.Bench(args).resolve_precision()
        return args.precision

    new = tmp_path / 'new'
    assert resolved(None, new) == ('bf16' if fast else 'fp32')
    assert resolved('fp32', new) == 'fp32'
    assert resolved('bf16', new) == 'bf16'
    for recorded, expect in (('float32', 'fp32'),
                             ('bfloat16 autocast (...)', 'bf16')):
        old = tmp_path / expect
        old.mkdir()
        (old / 'benchmark.json').write_text(
            json.dumps(dict(precision=recorded)))
        assert resolved(None, old) == expect


def test_benchmark_zoo_and_official_selection(cifar_jpg, tmp_path,  # noqa: F811
                                              keep_threads):
    """--stage1-keep-epochs keeps chosen stage-1 epochs; --stage1-from starts
    from them (the zoo) without training stage 1; ot_reweight_official
    starts from --official-from-epoch, runs --official-stage2-epochs, is
    tested every epoch and reports the best test epoch apart."""
    tool = load_tool()
    base = ['--data-root', cifar_jpg, '--imbalance-factor', '4', '--seeds',
            '0', '--stage1-batch-size', '32', '--stage2-batch-size', '16',
            '--test-batch-size', '50', '--threads', '1', '--quiet',
            '--stage1-epochs', '2', '--stage2-epochs', '1']
    out1 = str(tmp_path / 'train')
    assert tool.main(base + ['--out', out1, '--methods', 'ce',
                             '--stage1-keep-epochs', '1', '2']) == 0
    zoo = tmp_path / 'zoo'
    zoo_tool = load_tool('zoo.py')
    assert zoo_tool.main(['export', '--out', out1, '--seed', '0', '--zoo',
                          str(zoo)]) == 0
    for e in (1, 2):
        ckpt = torch.load(zoo / f'seed0_epoch{e}.pth', map_location='cpu')
        assert ckpt['meta']['epoch'] == e and 'optimizer' not in ckpt
    assert not (zoo / 'resume').exists()  # the run is finished
    meta = (zoo / 'metafile.yml').read_text()
    assert 'seed0_epoch2.pth' in meta and 'Top 1 Accuracy' in meta
    assert '  - Name: zoo_seed0_epoch2\n' in meta  # named after its collection
    assert (zoo / 'seed0_log.txt').stat().st_size > 0
    assert (zoo / 'config.py').is_file()
    # an unfinished run: its newest full checkpoint goes to resume/, and
    # restore puts it (and the kept epochs) back into a fresh OUT
    import shutil
    part = tmp_path / 'part'
    shutil.copytree(out1, part)
    os.remove(part / 'runs' / '0' / 'stage1_ce' / 'train_done.json')
    zoo2 = tmp_path / 'zoo2'
    # (an unfinished run has no results.json: --command records its command)
    os.remove(part / 'results.json')
    cmd = 'python tools/benchmark.py --seeds 0 --precision fp32'
    assert zoo_tool.main(['export', '--out', str(part), '--seed', '0',
                          '--zoo', str(zoo2), '--command', cmd]) == 0
    assert sorted(os.listdir(zoo2 / 'resume')) == ['seed0_epoch_2.pth']
    assert (zoo2 / 'seed0_command.txt').read_text() == cmd + '\n'
    assert cmd in (zoo2 / 'metafile.yml').read_text()
    fresh = tmp_path / 'fresh'
    assert zoo_tool.main(['restore', '--out', str(fresh), '--seed', '0',
                          '--zoo', str(zoo2)]) == 0
    # the logs come back too (one folder per start of the run), so that
    # the next export of the continued run keeps the whole history
    part_run = part / 'runs' / '0' / 'stage1_ce'
    log_dirs = [n for n in os.listdir(part_run)
                if (part_run / n / f'{n}.log').is_file()]
    assert log_dirs
    restored = fresh / 'runs' / '0' / 'stage1_ce'
    assert sorted(os.listdir(restored)) == sorted(
        ['epoch_2.pth', 'keep_epoch_1.pth', 'keep_epoch_2.pth'] + log_dirs)
    assert zoo_tool.training_log(str(restored)) == \
        (zoo2 / 'seed0_log.txt').read_text()
    out2 = str(tmp_path / 'from_zoo')
    assert tool.main(base + [
        '--out', out2, '--methods', 'ce', 'ot_reweight_official',
        '--stage1-from', str(zoo), '--official-from-epoch', '1',
        '--official-stage2-epochs', '2']) == 0
    assert not osp.isdir(osp.join(out2, 'runs', '0', 'stage1_ce',
                                  'keep_epoch_2.pth'))
    with open(osp.join(out2, 'runs', '0', 'ce', 'result.json')) as f:
        ce = json.load(f)
    with open(osp.join(out2, 'runs', '0', 'ot_reweight_official',
                       'result.json')) as f:
        off = json.load(f)
    assert ce['stage1_checkpoint'].endswith('seed0_epoch2.pth')
    assert off['stage1_checkpoint'].endswith('seed0_epoch1.pth')
    assert len(off['top1_per_epoch']) == 2
    assert off['best_test_epoch'] in (1, 2)
    assert off['top1_best_epoch_test_selection'] == max(off['top1_per_epoch'])
    assert off['top1'] == pytest.approx(off['top1_per_epoch'][-1], abs=1e-6)
    with open(osp.join(out2, 'results.json')) as f:
        res = json.load(f)
    assert res['budget']['stage1']['zoo'] is not None
    assert 'top1_best_epoch_test_selection' in \
        res['methods']['ot_reweight_official']
    with open(osp.join(out2, 'results.md')) as f:
        assert 'test-set selection' in f.read()


def test_benchmark_feature_cache_and_decoupled_balanced_softmax(
        cifar_jpg, tmp_path, keep_threads, capsys):  # noqa: F811
    """--stage2-feature-cache runs the classifier-only stage 2 on cached
    backbone outputs (the FeatureCacheHook is in the run's config), beside
    the decoupled Balanced Softmax row."""
    tool = load_tool()
    out = str(tmp_path / 'out')
    args = argv(cifar_jpg, out, '--stage2-feature-cache', '2')
    args[args.index('--methods') + 1:args.index('--seeds')] = [
        'ce', 'balanced_softmax_decoupled', 'ot_reweight']
    args.remove('--quiet')  # the cache hook logs at INFO
    assert tool.main(args) == 0
    with open(osp.join(out, 'results.json')) as f:
        res = json.load(f)
    assert 'view(s)' in res['budget']['stage2']['feature_cache']
    for name in ('balanced_softmax_decoupled', 'ot_reweight'):
        entry = res['methods'][name]
        assert 0 <= entry['top1'] <= 100, name
        runs = glob_configs(out, name)
        assert runs, name
        text = open(runs[0]).read()
        assert "FeatureCacheHook" in text and 'views=2' in text, name
    assert 'BalancedSoftmaxLoss' in open(
        glob_configs(out, 'balanced_softmax_decoupled')[0]).read()
    # one cache file per seed: filled by the first stage-2 run, read by
    # the next (same checkpoint, data and views)
    import glob
    assert glob.glob(osp.join(out, 'feature_cache', 'seed*_views2.pth'))
    logs = glob.glob(osp.join(out, 'runs', '*', 'ot_reweight', '*', '*.log'))
    assert logs and 'FeatureCacheHook: read 2 view(s)' in open(
        logs[0]).read()
    # cached timings are not the Runner's: reported apart, and the
    # uncached s/iter comes from a reference OUT (--stage2-timing-from)
    entry = res['methods']['ot_reweight']
    assert entry['stage2_sec_per_iter'] is None
    assert entry['stage2_cached_sec_per_iter'] > 0
    ref = str(tmp_path / 'uncached')
    os.makedirs(ref)
    with open(osp.join(out, 'benchmark.json')) as f:
        budget = json.load(f)
    budget['stage2']['feature_cache'] = None
    with open(osp.join(ref, 'benchmark.json'), 'w') as f:
        json.dump(budget, f)
    with open(osp.join(ref, 'results.json'), 'w') as f:
        json.dump(dict(methods=dict(ot_reweight=dict(
            stage2_sec_per_iter=0.125))), f)
    assert tool.main(args + ['--stage2-timing-from', ref]) == 0
    with open(osp.join(out, 'results.json')) as f:
        res = json.load(f)
    assert res['methods']['ot_reweight']['stage2_sec_per_iter'] == 0.125
    assert res['methods']['ot_reweight']['stage2_cached_sec_per_iter'] > 0
    assert res['methods'][
        'balanced_softmax_decoupled']['stage2_sec_per_iter'] is None
    budget['stage1']['epochs'] += 1  # another stage 1: refused
    with open(osp.join(ref, 'benchmark.json'), 'w') as f:
        json.dump(budget, f)
    assert tool.main(args + ['--stage2-timing-from', ref]) == 2
    assert 'its stage1 differs' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.parse_args(argv(cifar_jpg, out, '--stage2-feature-cache', '2',
                             '--stage2-whole-network'))
    with pytest.raises(SystemExit):
        tool.parse_args(argv(cifar_jpg, out, '--stage2-timing-from', ref))


def glob_configs(out, method):
    import glob
    return sorted(glob.glob(osp.join(out, '**', method, '**', '*.py'),
                            recursive=True))


def test_zoo_command_must_match_the_stage1_settings(tmp_path):
    """A zoo trained with another stage-1 schedule is refused: the budget
    of the results would misreport stage 1."""
    tool = load_tool()
    (tmp_path / 'seed0_command.txt').write_text(
        'python tools/benchmark.py --imbalance-factor 100 --stage1-epochs 200 '
        '--stage1-schedule step --seeds 0')
    args = tool.parse_args(['--data-root', str(tmp_path), '--out',
                            str(tmp_path / 'out'), '--stage1-from',
                            str(tmp_path), '--stage1-epochs', '200',
                            '--imbalance-factor', '100'])
    with pytest.raises(tool.BenchmarkError, match='--stage1-schedule step'):
        tool.check_zoo_command(args, 0)
    args.stage1_schedule = 'step'
    tool.check_zoo_command(args, 0)  # the zoo's settings: accepted
    tool.check_zoo_command(args, 1)  # no command file: nothing to check
    # the zoo has the configs' weight decay (2e-4): another one is refused
    args.stage1_weight_decay = 5e-4
    with pytest.raises(tool.BenchmarkError, match='--stage1-weight-decay'):
        tool.check_zoo_command(args, 0)
    args.stage1_weight_decay = 2e-4
    tool.check_zoo_command(args, 0)


def test_stage1_weight_decay_reaches_the_stage1_configs(tmp_path):
    """--stage1-weight-decay sets the SGD weight decay of the stage-1 runs
    (CE and the end-to-end baselines), not of stage 2; a negative one is
    refused when the arguments are parsed."""
    tool = load_tool()
    tool.import_mmot()
    base = ['--data-root', str(tmp_path), '--out', str(tmp_path / 'out')]
    args = tool.parse_args(base + ['--stage1-weight-decay', '1e-3'])
    builder = tool.Builder(args, [50, 20, 10])
    for name, config in (('stage1_ce', tool.CE_STAGE1),
                         ('focal', tool.METHODS['focal']['config'])):
        cfg = builder.stage1(name, config, str(tmp_path / name), 0)
        assert cfg.optim_wrapper.optimizer.weight_decay == 1e-3
    cfg = builder.stage2('ce_drw', str(tmp_path / 'drw'), 0, 'x.pth')
    assert cfg.optim_wrapper.optimizer.weight_decay == 5e-4  # its config's
    default = tool.Builder(tool.parse_args(base), [50, 20, 10]).stage1(
        'stage1_ce', tool.CE_STAGE1, str(tmp_path / 'd'), 0)
    assert default.optim_wrapper.optimizer.weight_decay == 2e-4
    with pytest.raises(SystemExit):
        tool.parse_args(base + ['--stage1-weight-decay', '-1'])


def test_zoo_checkpoints_are_not_git_ignored():
    """The zoo's weights-only checkpoints and resume files must land in the
    repository: a ``*.pth`` ignore rule once kept all of them out of the
    commits while the zoo README listed them. ``tools/zoo.py export`` now
    refuses to export into an ignored path."""
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    if not osp.exists(osp.join(repo, '.git')):
        pytest.skip('not a git checkout')
    zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce'
    paths = [f'{zoo}/seed0_epoch200.pth', f'{zoo}/resume/seed2_epoch_141.pth']
    tool = load_tool('zoo.py')
    assert tool.git_ignored([osp.join(repo, p) for p in paths]) == []
    assert tool.git_ignored([osp.join(repo, 'work_dirs', 'x.pth')])


def test_ot_options_reach_the_run_config(tmp_path):
    """--official-options sets the controls of the authors' recipe on
    ot_reweight_official alone; --ot-options learner.lr wins over --ot-lr
    (it was silently overwritten before)."""
    tool = load_tool()
    tool.import_mmot()
    args = tool.parse_args([
        '--data-root', str(tmp_path), '--out', str(tmp_path / 'out'),
        '--official-options', 'learner.lr=0.0', 'meta_loss_weight=0.0',
        'meta_loss_source=features', '--ot-options', 'learner.lr=0.0'])
    builder = tool.Builder(args, [50, 20, 10])
    off = builder.stage2('ot_reweight_official', str(tmp_path / 'a'), 0,
                         'stage1.pth')
    assert off.model.reweighter.learner.lr == 0.0
    assert off.model.meta_loss_weight == 0.0
    assert off.model.meta_loss_source == 'features'
    assert off.train_cfg.val_interval == 1  # the authors' selection: tested
    quiet = tool.Builder(tool.parse_args([
        '--data-root', str(tmp_path), '--out', str(tmp_path / 'out'),
        '--official-test-every-epoch', 'off']), [50, 20, 10])
    assert quiet.stage2('ot_reweight_official', str(tmp_path / 'e'), 0,
                        's.pth').get('val_dataloader') is None
    paper = builder.stage2('ot_reweight', str(tmp_path / 'b'), 0,
                           'stage1.pth')
    assert paper.model.reweighter.learner.lr == 0.0
    alone = tool.Builder(tool.parse_args([
        '--data-root', str(tmp_path), '--out', str(tmp_path / 'out'),
        '--ot-options', 'learner.lr=0.0']), [50, 20, 10])
    assert alone.stage2('ot_reweight', str(tmp_path / 'b'), 0,
                        'stage1.pth').model == paper.model  # no leak
    args = tool.parse_args(['--data-root', str(tmp_path), '--out',
                            str(tmp_path / 'out'), '--ot-lr', '7'])
    builder = tool.Builder(args, [50, 20, 10])
    assert builder.stage2('ot_reweight', str(tmp_path / 'c'), 0, 's.pth'
                          ).model.reweighter.learner.lr == 7
    assert builder.stage2('ot_reweight_official', str(tmp_path / 'd'), 0,
                          's.pth').model.reweighter.learner.lr == 1e-2


def test_paper_gap_table_only_at_the_papers_imbalance_factor():
    tool = load_tool()
    entry = dict(top1=65.38, seeds=[0, 1, 2])
    results = dict(imbalance_factor=100, seeds=[0, 1, 2],
                   methods=dict(ce=entry, crt=dict(top1=69.8, seeds=[0, 1, 2]),
                                ot_reweight_official=dict(top1=70.0,
                                                          seeds=[0])))
    lines = tool.paper_gap_lines(results)
    body = [ln for ln in lines if ln.startswith('| ') and 'paper row' not in ln]
    # crt has no row in the paper's Table 1; a one-seed method says so
    assert [ln.split('|')[1].strip() for ln in body] == \
        ['ce', 'ot_reweight_official (seed 0 only)']
    assert '| 65.38 | 70.14 | -4.76 |' in body[0]
    assert '| 70.00 | 81.87 | -11.87 |' in body[1]
    results['imbalance_factor'] = 50
    assert tool.paper_gap_lines(results) == []
