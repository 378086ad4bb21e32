# Stage-1 zoo run: plain CE on CIFAR-100-LT IF 100, the 200-epoch LDAM-DRW
# recipe (../_base_/stage1_zoo.py). Data: the official python CIFAR-100 read
# by mmpretrain's CIFAR100 (md5-checked) from data/cifar100/cifar-100-python.
# Paper Table 1 CE row (from LDAM-DRW): top-1 error 61.54 % (38.46 top-1).
_base_ = [
    '../../_base_/datasets/cifar100_lt.py',
    '../_base_/stage1_zoo.py',
]
model = dict(head=dict(num_classes=100))
train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'))
val_dataloader = None
val_evaluator = None
test_evaluator = [
    dict(type='LongTailMetric', class_counts={{_base_.class_counts}},
         per_class=True, many_shot_thr=100, few_shot_thr=20),
]
val_cfg = None
