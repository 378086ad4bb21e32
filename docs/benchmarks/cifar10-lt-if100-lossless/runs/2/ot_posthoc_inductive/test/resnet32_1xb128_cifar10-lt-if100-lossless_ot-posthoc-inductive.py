auto_scale_lr = dict(base_batch_size=128)
custom_hooks = [
    dict(epochs=[
        160,
        200,
    ], type='KeepEpochsCheckpointHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'mmot',
    ])
data_preprocessor = dict(
    mean=[
        125.307,
        122.961,
        113.8575,
    ],
    num_classes=10,
    std=[
        51.5865,
        50.847,
        51.255,
    ],
    to_rgb=True)
data_root = 'data/cifar10/png'
dataset_type = 'CustomDataset'
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2, type='CheckpointHook'),
    class_counts=dict(type='ClassCountsHook'),
    logger=dict(interval=50, type='LoggerHook'),
    param_scheduler=dict(type='ParamSchedulerHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    timer=dict(type='IterTimerHook'),
    visualization=dict(enable=False, type='VisualizationHook'))
default_scope = 'mmpretrain'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
imbalance_factor = 100
launcher = 'none'
load_from = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-lossless_ce/seed2_epoch200.pth'
log_level = 'INFO'
model = dict(
    backbone=dict(depth=32, type='CifarResNet'),
    head=dict(
        in_channels=64,
        loss=dict(loss_weight=1.0, type='CrossEntropyLoss'),
        num_classes=10,
        type='LinearClsHead'),
    neck=dict(type='GlobalAveragePooling'),
    type='ImageClassifier')
optim_wrapper = dict(
    optimizer=dict(lr=0.1, momentum=0.9, type='SGD', weight_decay=0.0002),
    type='BF16AmpOptimWrapper')
param_scheduler = [
    dict(
        begin=0,
        by_epoch=True,
        convert_to_iter_based=True,
        end=5,
        start_factor=0.2,
        type='LinearLR'),
    dict(
        begin=0,
        by_epoch=True,
        end=200,
        gamma=0.01,
        milestones=[
            160,
            180,
        ],
        type='MultiStepLR'),
]
randomness = dict(deterministic=False, seed=2)
resume = False
test_cfg = dict()
test_dataloader = dict(
    batch_size=128,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        data_prefix='test',
        data_root='data/cifar10/png',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackInputs'),
        ],
        type='CustomDataset'),
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = [
    dict(
        few_shot_thr=20,
        fit_file='/tmp/bench10/runs/2/meta_predictions/pred.pkl',
        many_shot_thr=100,
        method='ot',
        per_class=True,
        reg=1.0,
        type='PostHocMetric'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=201)
train_dataloader = dict(
    batch_size=128,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        dataset=dict(
            data_prefix='train',
            data_root='data/cifar10/png',
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(crop_size=32, padding=4, type='RandomCrop'),
                dict(direction='horizontal', prob=0.5, type='RandomFlip'),
                dict(type='PackInputs'),
            ],
            type='CustomDataset'),
        imbalance_factor=100,
        meta_per_class=10,
        meta_pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackInputs'),
        ],
        profile='exp',
        seed=0,
        type='LongTailDataset'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(crop_size=32, padding=4, type='RandomCrop'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
val_cfg = None
val_dataloader = None
val_evaluator = None
vis_backends = [
    dict(type='LocalVisBackend'),
]
visualizer = dict(
    type='UniversalVisualizer', vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = '/tmp/bench10/runs/2/ot_posthoc_inductive/test'
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-lossless_ce'
