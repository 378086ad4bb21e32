"""CIFAR-100-LT's cut with the meta hold-out: 500 images per class, 10 per
class held out as the meta set first, then the exponential cut of the
remaining 490 (as the OT authors' and MetaSAug's code): the rarest classes
keep int(490 / IF) images, 4 at IF 100 where the usual CIFAR-100-LT (no meta
set) has 5, and 2 at IF 200; 10626 training images at IF 100 (the usual
10847), 9304 at IF 200."""
import numpy as np
import pytest
from mmengine.dataset import BaseDataset

import mmot  # noqa: F401
from mmot.datasets import LongTailDataset, long_tail_counts


class FakeCifar100(BaseDataset):
    """The labels of CIFAR-100's training set in its layout: 100 classes,
    500 images each (no image is read)."""

    METAINFO = dict(classes=[f'c{k}' for k in range(100)])

    def __init__(self):
        super().__init__(serialize_data=False, lazy_init=False)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        labels = rng.permutation(np.repeat(np.arange(100), 500))
        return [dict(img_path=f'{i}.png', gt_label=int(k))
                for i, k in enumerate(labels)]

    def get_gt_labels(self):
        return np.array([d['gt_label'] for d in self.data_list])

    def get_cat_ids(self, idx):
        return [int(self.data_list[idx]['gt_label'])]


@pytest.mark.parametrize('imbalance, tail, total', [(100, 4, 10626),
                                                    (200, 2, 9304)])
def test_cifar100_cut_after_the_meta_hold_out(imbalance, tail, total):
    source = FakeCifar100()
    lt = LongTailDataset(source, imbalance_factor=imbalance,
                         meta_per_class=10, seed=0)
    counts = lt.class_counts
    assert counts == long_tail_counts(490, 100, imbalance)
    assert counts[0] == 490 and counts[-1] == tail and sum(counts) == total
    assert len(lt) == total
    labels = np.asarray(source.get_gt_labels())
    meta = np.asarray(lt.meta_indices)
    train = np.asarray(lt.train_indices)
    # 10 meta images of every class, none of them trained on
    assert np.bincount(labels[meta], minlength=100).tolist() == [10] * 100
    assert not set(meta.tolist()) & set(train.tolist())
    assert np.bincount(labels[train], minlength=100).tolist() == counts
    # Q's prototypes of the tail classes average more meta images (10)
    # than those classes train on (4 or 2)
    assert 10 > tail


def test_long_tail_meta_set_is_the_held_out_set():
    from mmot.datasets import LongTailMetaSet
    source = FakeCifar100()
    lt = LongTailDataset(source, imbalance_factor=100, meta_per_class=10)
    meta = LongTailMetaSet(lt)
    assert len(meta) == 1000 and meta.metainfo == lt.metainfo
    labels = [meta.get_cat_ids(i)[0] for i in range(len(meta))]
    assert np.bincount(labels).tolist() == [10] * 100
    assert meta[0]['img_path'] == source[lt.meta_indices[0]]['img_path']
    with pytest.raises(ValueError, match='no meta image'):
        LongTailMetaSet(LongTailDataset(source, imbalance_factor=100,
                                        meta_per_class=0))
