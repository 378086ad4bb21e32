# CIFAR-100-LT IF 100 for the benchmark runs: the official python CIFAR-100
# (data/cifar100/cifar-100-python, md5-checked by mmpretrain's CIFAR100)
# wrapped in LongTailDataset (10 meta images per class held out, seed 0,
# then 490 -> 4 images per class), no workers, one test at the end with
# many (> 100 images) / medium / few (< 20) and per-class accuracy.
_base_ = ['../../_base_/datasets/cifar100_lt.py']
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'))
val_dataloader = None
val_evaluator = None
test_evaluator = [
    dict(type='LongTailMetric', per_class=True, many_shot_thr=100,
         few_shot_thr=20),
]
# the stage-1 models every stage-2 and post-hoc row starts from
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar100-lt-if100_ce'
