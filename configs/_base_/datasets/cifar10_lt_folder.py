# CIFAR-10-LT from one-folder-per-class JPEGs (e.g. ../shared/data/cifar10-jpg:
# `tar xzf cifar10-jpg.tar.gz -C /tmp && ln -s /tmp/cifar10-jpg data/`),
# read with mmpretrain's CustomDataset:
#     data/cifar10-jpg/train/<class>/*.jpg   5000 per class
#     data/cifar10-jpg/test/<class>/*.jpg    1000 per class
# Class folders sort alphabetically into the CIFAR-10 label order. Otherwise
# as cifar10_lt.py: 10 meta images per class held out, then the exponential
# cut with imbalance factor IF of the remaining 4990 per class. JPEG
# re-encoding costs a little accuracy against the binary CIFAR-10.
dataset_type = 'CustomDataset'
data_root = 'data/cifar10-jpg'
imbalance_factor = 100

data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    # LoadImageFromFile decodes to BGR
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix='train',
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
        data_root=data_root,
        data_prefix='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='LongTailMetric'),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
