# CIFAR-10-LT (Cui et al., CVPR 2019; the OT re-weighting paper's CIFAR-LT-10).
# mmpretrain's CIFAR10 (python pickles under data/cifar10, downloaded if
# missing) wrapped in LongTailDataset: first 10 images per class are held out
# (seeded) as the balanced meta set of OT re-weighting, then the remaining
# 4990 per class are cut to n_i = 4990 * IF^(-i / 9) (class 0 = head).
# The test set stays balanced (1000 per class), so top-1 = balanced accuracy.
# Other imbalance factors: the cifar10_lt_if*.py files. The training class
# counts are not written here: ClassCountsHook (default_runtime.py) reads them
# from the LongTailDataset into the metric and the losses that need them.
dataset_type = 'CIFAR10'
imbalance_factor = 100

data_preprocessor = dict(
    num_classes=10,
    # RGB normalisation of CIFAR-10 (as mmpretrain's cifar10_bs16.py)
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    # CIFAR10 loads RGB arrays
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
            data_root='data/cifar10',
            split='train',
            pipeline=train_pipeline),
        imbalance_factor=imbalance_factor,
        profile='exp',
        meta_per_class=10,
        # the meta images are read without augmentation
        meta_pipeline=test_pipeline,
        seed=0),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar10',
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    # many (>100) / medium / few (<20) shot, balanced acc, gmean, KL
    dict(type='LongTailMetric'),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
