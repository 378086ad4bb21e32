# CIFAR-10-LT IF 100 on the lossless CIFAR-10 for the benchmark runs: the
# class folders of PNGs `python ../shared/data/unpack_cifar.py cifar10 DIR
# --png` writes (DIR/png/{train,test}/<class>/NNNN.png; 59,908 of the 60,000
# images bit-exact, 92 filled from the JPEGs: ../shared/data/README.md), read
# with CustomDataset (their md5s are not the official ones, so mmpretrain's
# CIFAR10 refuses them) from data/cifar10/png (`ln -s DIR data/cifar10`),
# wrapped in LongTailDataset (10 meta images per class held out, seed 0,
# then 4990 -> 49 per class); no workers; one test at the end with many
# (> 100) / medium / few (< 20) and per-class accuracy.
_base_ = ['../../_base_/datasets/cifar10_lt_folder.py']
data_root = 'data/cifar10/png'
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(dataset=dict(data_root=data_root)))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(data_root=data_root))
val_dataloader = None
val_evaluator = None
test_evaluator = [
    dict(type='LongTailMetric', per_class=True, many_shot_thr=100,
         few_shot_thr=20),
]
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-lossless_ce'
