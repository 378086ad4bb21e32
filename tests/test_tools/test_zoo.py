"""tools/zoo.py: a stage-1 run of tools/train.py exported into a zoo folder
(weights-only kept epochs, the resume checkpoint of an unfinished run, the
test result, the metafile) and restored from it; the zoo's checkpoints are
never git-ignored."""
import json
import os
import os.path as osp

import pytest
import torch

from _runner_utils import ROOT, load_tool

CONFIG = 'train_cfg = dict(by_epoch=True, max_epochs=3)\n'
METRICS = {'long_tail/top1': 61.5, 'long_tail/many_shot': 70.0,
           'long_tail/medium_shot': 40.0, 'long_tail/balanced_acc': 61.5,
           'long_tail/acc_class_0': 90.0, 'long_tail/acc_class_1': 33.0}


def _run(out, seed, epochs):
    d = osp.join(out, 'runs', str(seed), 'stage1_ce')
    os.makedirs(osp.join(d, '20260101_000000'))
    with open(osp.join(d, 'cfg.py'), 'w') as f:
        f.write(CONFIG)
    with open(osp.join(d, '20260101_000000', '20260101_000000.log'),
              'w') as f:
        f.write('epoch log\n')
    state = dict(meta=dict(epoch=1), state_dict={'w': torch.ones(2)},
                 message_hub={}, optimizer={'state': {}})
    for e in epochs:
        torch.save(dict(state, meta=dict(epoch=e)),
                   osp.join(d, f'epoch_{e}.pth'))
    torch.save(state, osp.join(d, 'keep_epoch_1.pth'))
    return d


def test_export_unfinished_then_finished_train_py_run(tmp_path):
    zoo_tool = load_tool('zoo.py')
    out, zoo = str(tmp_path / 'out'), str(tmp_path / 'zoo')
    d = _run(out, 0, [1, 2])
    zoo_tool.main(['export', '--out', out, '--seed', '0', '--zoo', zoo])
    assert not zoo_tool.run_finished(d)
    assert os.listdir(osp.join(zoo, 'resume')) == ['seed0_epoch_2.pth']
    kept = torch.load(osp.join(zoo, 'seed0_epoch1.pth'))
    assert set(kept) == {'meta', 'state_dict', 'message_hub'}  # no optimizer
    assert not osp.isfile(osp.join(zoo, 'seed0_result.json'))
    assert 'tools/train.py cfg.py' in open(
        osp.join(zoo, 'seed0_command.txt')).read()
    # the run ends (epoch 3 of its config) and is tested
    torch.save(dict(meta=dict(epoch=3)), osp.join(d, 'epoch_3.pth'))
    with open(osp.join(d, 'result.json'), 'w') as f:
        json.dump(METRICS, f)
    zoo_tool.main(['export', '--out', out, '--seed', '0', '--zoo', zoo])
    assert zoo_tool.run_finished(d)
    assert not osp.isdir(osp.join(zoo, 'resume'))
    res = json.load(open(osp.join(zoo, 'seed0_result.json')))
    assert res['top1'] == 61.5 and res['per_class'] == [90.0, 33.0]
    assert 'Top 1 Accuracy: 61.50' in open(
        osp.join(zoo, 'metafile.yml')).read()


def test_export_of_a_resumed_run_keeps_the_recipe_config(tmp_path):
    zoo_tool = load_tool('zoo.py')
    out, zoo = str(tmp_path / 'out'), str(tmp_path / 'zoo')
    d = _run(out, 0, [1])
    with open(osp.join(d, 'cfg.py'), 'w') as f:  # what --resume dumps
        f.write(CONFIG + "load_from = '/tmp/x/epoch_37.pth'\n"
                "resume = 'auto'\n")
    zoo_tool.main(['export', '--out', out, '--seed', '0', '--zoo', zoo])
    cfg = open(osp.join(zoo, 'config.py')).read()
    assert 'load_from = None' in cfg and 'resume = False' in cfg
    assert '/tmp/x' not in cfg and CONFIG in cfg


def test_metafile_gives_each_seed_its_own_command(tmp_path):
    # seeds of one collection trained by different commands (the lossless
    # CIFAR-10 zoo's seed 0 by the earlier tool): each model names its own
    zoo_tool = load_tool('zoo.py')
    out, zoo = str(tmp_path / 'out'), str(tmp_path / 'zoo')
    for seed, cmd in [(0, 'python tools/benchmark.py --seeds 0'),
                      (1, 'python tools/train.py cfg.py --seed 1')]:
        _run(out, seed, [1])
        zoo_tool.main(['export', '--out', out, '--seed', str(seed), '--zoo',
                       zoo, '--command', cmd])
    models = open(osp.join(zoo, 'metafile.yml')).read().split('  - Name: ')
    seed0 = [m for m in models if '_seed0_epoch1' in m.split('\n')[0]]
    seed1 = [m for m in models if '_seed1_epoch1' in m.split('\n')[0]]
    assert 'Code: "python tools/benchmark.py --seeds 0"' in seed0[0]
    assert 'Code: "python tools/train.py cfg.py --seed 1"' in seed1[0]


def test_restore_puts_the_resume_checkpoint_and_log_back(tmp_path):
    zoo_tool = load_tool('zoo.py')
    out, zoo = str(tmp_path / 'out'), str(tmp_path / 'zoo')
    _run(out, 1, [1, 2])
    zoo_tool.main(['export', '--out', out, '--seed', '1', '--zoo', zoo])
    again = str(tmp_path / 'again')
    zoo_tool.main(['restore', '--out', again, '--seed', '1', '--zoo', zoo])
    d = osp.join(again, 'runs', '1', 'stage1_ce')
    assert sorted(os.listdir(d)) == ['20260101_000000', 'epoch_2.pth',
                                     'keep_epoch_1.pth']
    assert open(osp.join(d, '20260101_000000',
                         '20260101_000000.log')).read() == 'epoch log\n'


def test_zoo_checkpoints_are_not_git_ignored():
    """The zoo's weights-only checkpoints and resume files must land in the
    repository: a ``*.pth`` ignore rule once kept all of them out of the
    commits while the zoo README listed them. ``tools/zoo.py export`` now
    refuses to export into an ignored path."""
    if not osp.exists(osp.join(ROOT, '.git')):
        pytest.skip('not a git checkout')
    zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce'
    paths = [f'{zoo}/seed0_epoch200.pth', f'{zoo}/resume/seed2_epoch_141.pth']
    tool = load_tool('zoo.py')
    assert tool.git_ignored([osp.join(ROOT, p) for p in paths]) == []
    assert tool.git_ignored([osp.join(ROOT, 'work_dirs', 'x.pth')])
