# ImageNet-LT (Liu et al., CVPR 2019 "OLTR"): 115.8K training images in 1000
# classes (1280 to 5 per class), read from the standard "path label" lists
# with mmpretrain's CustomDataset:
#     data/imagenet/train/..., data/imagenet/val/...   (ILSVRC-2012 images)
#     data/imagenet/ImageNet_LT/ImageNet_LT_{train,val,test}.txt
# The training list is already long-tailed, so LongTailDataset makes no cut
# (imbalance_factor=None) and removes nothing from it; the OT meta set is 10
# images per class drawn (seeded) from the balanced 20-per-class val list
# (paper appendix B.1). Validation and test use the balanced 50-per-class
# test list (from the ILSVRC-2012 val images).
# LongTailMetric's class_counts (of the training list) are read from the
# training set by ClassCountsHook (default_runtime.py).
dataset_type = 'CustomDataset'
data_root = 'data/imagenet'

data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='ImageNet_LT/ImageNet_LT_train.txt',
            pipeline=train_pipeline),
        imbalance_factor=None,
        meta_per_class=10,
        meta_dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='ImageNet_LT/ImageNet_LT_val.txt',
            pipeline=test_pipeline),
        meta_pipeline=test_pipeline,
        seed=0),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageNet_LT/ImageNet_LT_test.txt',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='LongTailMetric'),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
