# Places-LT (Liu et al., CVPR 2019 "OLTR"): 62.5K training images in 365
# classes (4980 to 5 per class) from Places-365, read from the standard
# "path label" lists with mmpretrain's CustomDataset:
#     data/places365/<image paths of the lists>
#     data/places365/Places_LT/Places_LT_{train,val,test}.txt
# (paths in the lists are relative to data_root; strip a leading '/' if your
# copy of the lists has one). The training list is already long-tailed, so
# LongTailDataset makes no cut (imbalance_factor=None) and removes nothing;
# the OT meta set is 10 images per class drawn (seeded) from the balanced
# 20-per-class val list (paper appendix B.1). Validation and test use the
# balanced 100-per-class test list.
# LongTailMetric's class_counts (of the training list) are read from the
# training set by ClassCountsHook (default_runtime.py).
dataset_type = 'CustomDataset'
data_root = 'data/places365'

data_preprocessor = dict(
    num_classes=365,
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
    batch_size=32,
    num_workers=8,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='Places_LT/Places_LT_train.txt',
            pipeline=train_pipeline),
        imbalance_factor=None,
        meta_per_class=10,
        meta_dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='Places_LT/Places_LT_val.txt',
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
        ann_file='Places_LT/Places_LT_test.txt',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='LongTailMetric'),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
