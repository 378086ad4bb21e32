# CIFAR-100-LT (Cui et al., CVPR 2019; the OT re-weighting paper's
# CIFAR-LT-100). mmpretrain's CIFAR100 (python pickles under data/cifar100,
# downloaded if missing) wrapped in LongTailDataset: first 10 images per class
# are held out (seeded) as the balanced meta set, then the remaining 490 per
# class are cut to n_i = 490 * IF^(-i / 99) (class 0 = head). The test set
# stays balanced (100 per class). Other imbalance factors: the
# cifar100_lt_if*.py files. The training class counts are not written here:
# ClassCountsHook (default_runtime.py) reads them from the LongTailDataset into
# the metric and the losses that need them.
dataset_type = 'CIFAR100'
imbalance_factor = 100

data_preprocessor = dict(
    num_classes=100,
    # RGB normalisation of CIFAR-100 (as mmpretrain's cifar100_bs16.py)
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    # CIFAR100 loads RGB arrays
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(
            type=dataset_type,
            data_root='data/cifar100',
            split='train',
            pipeline=train_pipeline),
        imbalance_factor=imbalance_factor,
        profile='exp',
        meta_per_class=10,
        meta_pipeline=test_pipeline,
        seed=0),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar100',
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='LongTailMetric'),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
