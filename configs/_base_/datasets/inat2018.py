# iNaturalist 2018 (Van Horn et al., CVPR 2018): 437.5K training images in
# 8142 classes (1000 to 2 per class), read from "path label" lists (e.g. the
# iNaturalist18_{train,val}.txt of the Decoupling code) with CustomDataset:
#     data/inat2018/train_val2018/...            (the images)
#     data/inat2018/iNaturalist18_{train,val}.txt
# The training set is long-tailed already (imbalance_factor=None). The OT
# meta set is 2 images per class drawn (seeded) from the *training* list
# (paper appendix B.1). The rarest classes have only 2 training images, so
# the meta images cannot be removed from training: they are drawn from a
# second copy of the training list (`meta_dataset`), which LongTailDataset
# never subtracts. Validation and test use the official (balanced, 3 per
# class) val list.
# LongTailMetric's class_counts (of the training list) are read from the
# training set by ClassCountsHook (default_runtime.py).
dataset_type = 'CustomDataset'
data_root = 'data/inat2018'

data_preprocessor = dict(
    num_classes=8142,
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
    batch_size=64,
    num_workers=8,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='iNaturalist18_train.txt',
            pipeline=train_pipeline),
        imbalance_factor=None,
        meta_per_class=2,
        meta_dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='iNaturalist18_train.txt',
            pipeline=test_pipeline),
        meta_pipeline=test_pipeline,
        # the meta images are drawn from the training list on purpose
        allow_meta_overlap=True,
        seed=0),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='iNaturalist18_val.txt',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='LongTailMetric'),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
