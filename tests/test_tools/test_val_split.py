"""tools/benchmark/val_split.py: the balanced validation split carved from a
class-folder training set, and the options that make a benchmark config
train on the rest and test on the split."""
import numpy as np
import pytest
from mmengine.config import Config, DictAction

from _runner_utils import load_tool


def _tool():
    return load_tool('benchmark/val_split.py')


def _folders(root, per_class=(12, 9, 8)):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        for k, n in enumerate(per_class):
            d = root / split / f'class{k}'
            d.mkdir(parents=True)
            for i in range(n if split == 'train' else 2):
                img = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f'{i:03d}.png')


def test_draw_is_balanced_seeded_and_checks_size():
    vs = _tool()
    labels = np.repeat([0, 1, 2], [10, 6, 4])
    mask = vs.draw(labels, 2, seed=3)
    assert np.bincount(labels[mask]).tolist() == [2, 2, 2]
    assert (vs.draw(labels, 2, seed=3) == mask).all()
    assert (vs.draw(labels, 2, seed=4) != mask).any()
    with pytest.raises(ValueError, match='class 2 has only 4'):
        vs.draw(labels, 3)


def test_options_train_on_the_rest_and_test_on_the_split(tmp_path):
    """The options of options.txt applied to a LongTailDataset config: the
    split's images are the test set, and none of them is trained on or in
    the meta set."""
    import mmot  # noqa: F401
    from mmpretrain.registry import DATASETS
    vs = _tool()
    root = tmp_path / 'data'
    _folders(root)
    paths = vs.write_split(str(root), 2, str(tmp_path / 'split'))
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(
            type='LongTailDataset', imbalance_factor=2, meta_per_class=1,
            dataset=dict(type='CustomDataset', data_root=str(root),
                         data_prefix='train', pipeline=[]))),
        test_dataloader=dict(dataset=dict(
            type='CustomDataset', data_root=str(root), data_prefix='test',
            pipeline=[]))))
    options = open(paths['options']).read().split()
    parser = __import__('argparse').ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options',
                                           *options]).cfg_options)
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    train = DATASETS.build(cfg.train_dataloader.dataset)
    test = DATASETS.build(cfg.test_dataloader.dataset)
    val_imgs = {test.get_data_info(i)['img_path'] for i in range(len(test))}
    assert len(val_imgs) == 6  # 2 per class, from train/
    assert all('/train/' in p for p in val_imgs)
    assert [test.get_data_info(i)['gt_label']
            for i in range(len(test))] == [0, 0, 1, 1, 2, 2]
    src = train.dataset
    trained = {src.get_data_info(int(i))['img_path']
               for i in train.train_indices}
    meta = {src.get_data_info(int(i))['img_path']
            for i in train.meta_indices}
    assert len(src) == 29 - 6
    assert not val_imgs & (trained | meta)
    assert train.class_counts[0] == 12 - 2 - 1  # head: all the rest
