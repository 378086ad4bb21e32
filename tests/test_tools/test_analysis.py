# Copyright (c) mmot contributors. All rights reserved.
"""tools/analysis scripts run on small synthetic inputs (and the offline
digits demo) and write readable PNG files."""
import glob
import importlib.util
import io
import json
import os.path as osp
import re

import numpy as np
import pytest
import torch

import mmot  # noqa: F401

pytestmark = pytest.mark.usefixtures('one_thread_module')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS_CFGS = sorted(
    glob.glob(
        osp.join(ROOT, 'configs', 'ot_reweight', 'resnet8_*digits*_ot.py')))


def load_script(name):
    path = osp.join(ROOT, 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'analysis_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path, min_size=200):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    assert osp.isfile(path) and osp.getsize(path) > 1000
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    img = plt.imread(path)
    assert img.shape[0] >= min_size and img.shape[1] >= min_size
    assert img[..., :3].std() > 0.01  # not a blank canvas


@pytest.fixture(scope='module')
def digits_cfg():
    if not DIGITS_CFGS:
        pytest.skip('no digits demo config in configs/ot_reweight')
    return DIGITS_CFGS[0]


@pytest.fixture(scope='module')
def digits_checkpoint(digits_cfg, tmp_path_factory):
    """A randomly initialised model of the digits demo, as a checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(digits_cfg)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    path = str(tmp_path_factory.mktemp('ckpt') / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=3)), path)
    return path


# ---------------------------------------------------------------- Fig. 3
def test_plot_class_weights_from_json(tmp_path):
    script = load_script('plot_class_weights')
    counts = [500, 200, 80, 30, 10]
    runs = []
    for imb in (50, 10):
        work_dir = tmp_path / f'if{imb}'
        work_dir.mkdir()
        epochs = [dict(epoch=e, class_mean_weight=[
            0.5 + 0.1 * e * k for k in range(5)]) for e in (3, 4)]
        epochs[-1]['class_mean_weight'][2] = None  # a class not seen
        (work_dir / 'ot_class_weights.json').write_text(
            json.dumps(dict(class_counts=counts, epochs=epochs)))
        runs.append(str(work_dir))
    got_counts, curves = script.read_json(runs[0], epochs='all')
    assert got_counts == counts and len(curves) == 2
    assert np.isnan(curves[1][1][2])
    assert curves[0][1][4] == pytest.approx(0.5 + 0.1 * 3 * 4)
    with pytest.raises(ValueError, match='epochs'):
        script.read_json(runs[0], epochs='7')
    # the share of the training weight: CE's frequencies for uniform
    # weights, class balance for weights inversely proportional to counts
    assert script.class_mass(counts, np.ones(5)) == pytest.approx(
        np.asarray(counts) / sum(counts))
    assert script.class_mass(counts, 1 / np.asarray(counts)) == \
        pytest.approx(np.full(5, 0.2))
    assert script.class_mass(counts, [1, 1, np.nan, 1, 1])[2] == 0
    out = str(tmp_path / 'fig3.png')
    script.main(runs + ['--epochs', 'all', '--titles', 'IF=50', 'IF=10',
                        '--out', out])
    assert_png(out)


def test_plot_class_weights_from_checkpoint(digits_cfg, tmp_path, capsys):
    script = load_script('plot_class_weights')
    from mmengine.config import Config
    labels, counts = script.train_labels(Config.fromfile(digits_cfg))
    assert (np.bincount(labels[labels >= 0]) == counts).all()
    # a weight vector whose class means are known: 1 + class index
    weights = torch.ones(len(labels))
    train = torch.as_tensor(labels >= 0)
    weights[train] = 1.0 + torch.as_tensor(labels)[train].float()
    curve = script.checkpoint_curve(weights.numpy(), labels, 'normalize',
                                    len(counts))
    mean = float((1.0 + labels[labels >= 0]).mean())
    assert curve == pytest.approx((1.0 + np.arange(10)) / mean)
    soft = script.checkpoint_curve(np.log(weights.numpy()), labels,
                                   'softmax', len(counts))
    assert soft == pytest.approx(curve)  # softmax of log w = normalised w
    spread = script.within_class_concentration(weights.numpy(), labels,
                                               'normalize', len(counts))
    # equal weights within a class: every image counts, the top one holds 1/n
    assert spread['effective'] == pytest.approx(np.asarray(counts, float))
    assert spread['top_share'] == pytest.approx(1.0 / np.asarray(counts))
    assert spread['max_weight'] == pytest.approx(curve)
    # class 0's weight all on one image: one effective image holding it all
    peaked = weights.clone()
    first = int(np.flatnonzero(labels == 0)[0])
    peaked[torch.as_tensor(labels == 0)] = 0.0
    peaked[first] = 5.0
    spread = script.within_class_concentration(peaked.numpy(), labels,
                                               'normalize', len(counts))
    assert spread['effective'][0] == pytest.approx(1.0)
    assert spread['top_share'][0] == pytest.approx(1.0)
    assert spread['effective'][1] == pytest.approx(counts[1])
    ckpt = str(tmp_path / 'epoch_3.pth')
    # the learner state as OTImageClassifier's state_dict holds it
    torch.save(dict(state_dict={'reweighter.learner.weights': weights},
                    meta=dict(epoch=3)), ckpt)
    out = str(tmp_path / 'weights.png')
    script.main([ckpt, '--config', digits_cfg, '--out', out])
    assert_png(out)
    with pytest.raises(ValueError, match='--config'):
        script.main([ckpt, '--out', out])
    # a GlobalWeightVector checkpoint: w is one measure over the source
    # (0 outside the training set); class 0's weight all on one image
    w = torch.zeros(len(labels), dtype=torch.float64)
    w[train] = 1.0
    w[torch.as_tensor(labels == 0)] = 0.0
    w[first] = float(counts[0])
    w /= w.sum()
    # (as an earlier mmot serialised it: one uint8 _extra_state blob)
    buf = io.BytesIO()
    torch.save(dict(reweighter=dict(learner=dict(params=dict(
        w=w, labels=torch.as_tensor(labels), in_train=train)))), buf)
    blob = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    gckpt = str(tmp_path / 'global.pth')
    torch.save(dict(state_dict={'_extra_state': blob}), gckpt)
    capsys.readouterr()
    script.main([gckpt, '--config', digits_cfg, '--out', out])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith('  ')]
    assert len(rows) == len(counts)
    # class, images, mean weight, share, effective images, top share, max
    assert [float(v) for v in rows[0][2:]] == pytest.approx(
        [1.0, counts[0] / sum(counts), 1.0, 1.0, counts[0]], abs=1e-3)
    assert float(rows[1][4]) == pytest.approx(counts[1], abs=0.05)
    with pytest.raises(ValueError, match='GlobalWeightVector'):
        script.main([gckpt, '--config', digits_cfg, '--parametrization',
                     'softmax', '--out', out])


# ---------------------------------------------------------------- Fig. 5
def test_plot_transport_toy(tmp_path):
    script = load_script('plot_transport')
    z, y, mz, my = script.toy_features(num_classes=6, dim=8)
    assert torch.bincount(y).tolist() == [6, 5, 4, 3, 2, 1]
    label = script.fit('label', z, y, mz, my, 6, steps=15)
    assert label['w'].sum() == pytest.approx(1.0)
    assert label['plan'].sum(1) == pytest.approx(label['w'], abs=1e-4)
    assert label['ot'] < label['ot0']
    # label cost: class-level weights, larger for the rarer classes
    means = [label['w'][y.numpy() == k].mean() for k in range(6)]
    for k in range(6):
        assert np.ptp(label['w'][y.numpy() == k]) < 1e-8
    assert means[-1] > means[0]
    out = str(tmp_path / 'fig5.png')
    script.main(['--num-classes', '6', '--steps', '3', '--out', out])
    assert_png(out)


def test_plot_transport_real_features(digits_cfg, digits_checkpoint,
                                      tmp_path):
    script = load_script('plot_transport')
    z, y, mz, my = script.real_features(digits_cfg, digits_checkpoint, 4)
    assert torch.bincount(y).tolist() == [4, 3, 2, 1]
    assert torch.bincount(my).tolist() == [10] * 4  # 10 meta per class
    assert z.shape[1] == mz.shape[1] == 64
    out = str(tmp_path / 'fig5_digits.png')
    script.main(['--config', digits_cfg, '--checkpoint', digits_checkpoint,
                 '--num-classes', '4', '--steps', '2', '--costs', 'combined',
                 '--out', out])
    assert_png(out)


# ---------------------------------------------------------------- Fig. 2
def test_plot_confusion_from_pkl(tmp_path):
    from mmengine.fileio import dump
    script = load_script('plot_confusion')
    rng = np.random.default_rng(0)
    k = 5
    counts = [10, 500, 40, 200, 5]  # class 1 is the most frequent
    paths = []
    for bias in (2.0, 0.0):
        results = []
        for n in range(100):
            gt = n % k
            logits = rng.normal(size=k)
            logits[gt] += 1.5
            logits += bias * np.log(counts) / np.log(500)
            p = np.exp(logits) / np.exp(logits).sum()
            results.append(dict(pred_score=torch.tensor(p).float(),
                                gt_label=torch.tensor([gt])))
        paths.append(str(tmp_path / f'bias{bias}.pkl'))
        dump(results, paths[-1])
    mat = script.matrix_from_pkl(paths[0])
    assert mat.shape == (k, k) and mat.sum() == 100
    assert (mat.sum(1) == 20).all()
    assert list(script.order_by_frequency(counts, k)) == [1, 3, 2, 0, 4]
    counts_file = tmp_path / 'ot_class_weights.json'
    counts_file.write_text(json.dumps(dict(class_counts=counts, epochs=[])))
    assert script.parse_counts(str(counts_file)) == counts
    assert script.parse_counts('3,2,1') == [3, 2, 1]
    out = str(tmp_path / 'fig2.png')
    script.main(['--pkl'] + paths + ['--class-counts', str(counts_file),
                                     '--titles', 'biased', 'fair',
                                     '--out', out])
    assert_png(out)
    with pytest.raises(ValueError, match='class counts'):
        script.main(['--pkl', paths[0], '--class-counts', '1,2,3',
                     '--out', out])


def test_plot_confusion_from_checkpoint(digits_cfg, digits_checkpoint,
                                        tmp_path):
    script = load_script('plot_confusion')
    from mmengine.config import Config
    cfg = Config.fromfile(digits_cfg)
    cfg.test_dataloader.dataset.serialize_data = False
    mat, classes = script.matrix_from_checkpoint(cfg, digits_checkpoint,
                                                 str(tmp_path / 'run'))
    assert mat.shape == (10, 10) and mat.sum() == 600  # 60 per class
    assert (mat.sum(1) == 60).all() and len(classes) == 10
    counts = script.counts_from_config(cfg)  # from the LongTailDataset
    assert len(counts) == 10 and counts[0] == max(counts)
    out = str(tmp_path / 'confusion.png')
    script.main(['--config', digits_cfg, '--checkpoint', digits_checkpoint,
                 '--work-dir', str(tmp_path / 'run2'), '--out', out])
    assert_png(out)


def test_ot_class_mass(tmp_path):
    """The label-cost simulation: a tiny beta leaves the CE class mass, a
    large one moves mass from the head to the tail; scratch weights balance
    each batch at once."""
    tool = load_script('ot_class_mass')
    out = tmp_path / 'mass.json'
    tool.main(['--num-classes', '4', '--n-max', '200', '--imbalance-factor',
               '10', '--batch-size', '32', '--epochs', '2', '--beta', '1e-4',
               '100', '--learner', 'vector', 'scratch', '--out', str(out)])
    rows = json.loads(out.read_text())['rows']
    counts = np.array(json.loads(out.read_text())['counts'], dtype=float)
    freq = counts / counts.sum()
    small, large, scratch = rows
    assert small['beta'] == 1e-4 and scratch['learner'] == 'scratch'
    np.testing.assert_allclose(small['class_mass'], freq, atol=2e-3)
    for row in (large, scratch):
        mass = np.array(row['class_mass'])
        assert abs(mass.sum() - 1) < 1e-3
        assert mass[0] < freq[0] - 0.05 and mass[-1] > freq[-1] + 0.02
        assert row['class_mean_weight'][-1] > row['class_mean_weight'][0]


def test_ot_step_timing(digits_cfg, tmp_path, capsys):
    """The OT step timing tool on the digits demo (stage 2 from the first
    epoch): it times the calls in the Runner, replays them from the
    re-weighter's first state, taking the run's weight steps (the same
    batch weights), and prints the medians; a config without the hook is
    refused."""
    tool = load_script('ot_step_timing')
    tool.main([digits_cfg, '--iters', '12', '--skip', '2', '--rounds', '1',
               '--profile', '5',
               '--work-dir', str(tmp_path), '--cfg-options',
               'default_hooks.ot_reweight.start_epoch=0'])
    out = capsys.readouterr().out
    assert '12 OT calls' in out
    runner_ms = float(out.split('in the Runner')[1].split()[0])
    alone_ms = float(out.split('alone')[1].split(',')[0])
    after_ms = float(out.split('backbone forward')[1].split()[0])
    assert all(0 < x < 1000 for x in (runner_ms, alone_ms, after_ms))
    diff = float(out.split('difference|')[1].split()[0])
    assert diff < 1e-6
    # the profile of one replay: its 12 calls of the re-weighter's forward
    prof = out.split('cProfile of one replay, 12 calls')[1]
    assert re.search(r'\n\s+12\s.*reweighter\.py:\d+\(forward\)', prof)
    ce_cfg = osp.join(ROOT, 'configs', 'baselines',
                      'resnet8_1xb32_sklearn8x8-lt-if20_ce.py')
    with pytest.raises(SystemExit, match='no OTReweightHook'):
        tool.main([ce_cfg, '--work-dir', str(tmp_path / 'ce')])


def test_ot_class_mass_presence_bound(tmp_path):
    """The batch-presence bound: exact on a small case, and no simulated
    class mass ever exceeds it (weights sum to 1 in every batch); with
    larger batches and enough epochs the tail class gets more mass than
    any weights could give it at the small batch."""
    tool = load_script('ot_class_mass')
    # 4 images, batches of 2: class 1 (1 image) is in half of the batches
    assert tool.presence_bound([3, 1], 2) == pytest.approx([1.0, 0.5])
    assert tool.presence_bound([5, 5], 10) == pytest.approx([1.0, 1.0])
    out = tmp_path / 'mass.json'
    tool.main(['--num-classes', '4', '--n-max', '400', '--imbalance-factor',
               '40', '--batch-size', '8', '64', '--epochs', '1', '30',
               '--beta', '10', '1000', '--out', str(out)])
    res = json.loads(out.read_text())
    bounds = {int(k): v for k, v in res['presence_bound'].items()}
    assert bounds[8][-1] < 0.25 < bounds[64][-1]
    rows = res['rows']
    assert [(r['batch_size'], r['beta'], r['epochs']) for r in rows] == [
        (b, beta, e) for b in (8, 64) for beta in (10, 1000) for e in (1, 30)]
    for row in rows:
        assert all(m <= b + 1e-3 for m, b in zip(row['class_mass'],
                                                  bounds[row['batch_size']]))
    big = [r for r in rows if r['batch_size'] == 64 and r['epochs'] == 30]
    assert max(r['class_mass'][-1] for r in big) > bounds[8][-1]


def test_precision_timing(capsys):
    tool = load_script('precision_timing')
    res = tool.main(['--batch-size', '2', '--iters', '1', '--depth', '8'])
    assert set(res) == {'fp32', 'bf16'} and all(t > 0 for t in res.values())
    out = capsys.readouterr().out
    assert 'native bfloat16' in out and 'bf16 / fp32 =' in out


def test_ot_class_mass_global(tmp_path):
    """The global learner in the label-cost simulation: unlike the per-batch
    weights it is not bound by the batch presence - the tail class gets
    more training mass than the presence bound allows at this batch size,
    and w itself nears class balance."""
    tool = load_script('ot_class_mass')
    out = tmp_path / 'mass.json'
    tool.main(['--num-classes', '4', '--n-max', '400', '--imbalance-factor',
               '40', '--batch-size', '8', '--epochs', '3', '--beta', '1',
               '--learner', 'global', '--global-interval', '2', '--out',
               str(out)])
    res = json.loads(out.read_text())
    (row, ) = res['rows']
    assert row['learner'] == 'global'
    bound = res['presence_bound']['8']
    assert row['class_mass'][-1] > bound[-1]
    np.testing.assert_allclose(row['global_class_mass'], 0.25, atol=0.02)


def test_loader_timing(digits_cfg, capsys):
    """The loader timing tool on the digits: both loaders run over the
    same sampler and a median per batch is printed for each."""
    tool = load_script('loader_timing')
    tool.main([digits_cfg, '--batches', '2', '--repeats', '1'])
    out = capsys.readouterr().out
    for name in ('full pipeline', 'without images'):
        ms = float(out.split(f'{name}: median ')[1].split()[0])
        assert 0 < ms < 1000
