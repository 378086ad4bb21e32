auto_scale_lr = dict(base_batch_size=16)
cb_beta = 0.9999
class_counts = [
    4990,
    2991,
    1793,
    1075,
    644,
    386,
    231,
    138,
    83,
    49,
]
class_weight = [
    0.05019795373522097,
    0.07628504345935017,
    0.12014235381276163,
    0.19348555196428746,
    0.31618822150576825,
    0.5208224081703184,
    0.8636073755345387,
    1.4389174399043907,
    2.3858585961624517,
    4.034495055750913,
]
custom_hooks = [
    dict(
        file=
        '/work/main/docs/benchmarks/cifar10-lt-if100-full/feature_cache/seed2_views10.pth',
        seed=2,
        start_epoch=0,
        type='FeatureCacheHook',
        views=10),
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
dataset_type = 'CIFAR10'
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2, type='CheckpointHook'),
    logger=dict(interval=200, type='LoggerHook'),
    param_scheduler=dict(type='ParamSchedulerHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    timer=dict(type='IterTimerHook'),
    visualization=dict(enable=False, type='VisualizationHook'))
default_scope = 'mmpretrain'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
experiment_name = 'seed_2_ce_drw_1796217845360709696'
imbalance_factor = 100
launcher = 'none'
load_from = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce/seed2_epoch200.pth'
log_level = 'INFO'
model = dict(
    backbone=dict(depth=32, frozen_stages=3, type='CifarResNet'),
    head=dict(
        in_channels=64,
        loss=dict(
            class_weight=[
                0.05019795373522097,
                0.07628504345935017,
                0.12014235381276163,
                0.19348555196428743,
                0.31618822150576825,
                0.5208224081703184,
                0.8636073755345388,
                1.438917439904391,
                2.3858585961624517,
                4.034495055750913,
            ],
            loss_weight=1.0,
            type='CrossEntropyLoss'),
        num_classes=10,
        type='LinearClsHead'),
    neck=dict(type='GlobalAveragePooling'),
    type='OTImageClassifier')
optim_wrapper = dict(
    optimizer=dict(lr=0.01, momentum=0.9, type='SGD', weight_decay=0.0005),
    type='BF16AmpOptimWrapper')
param_scheduler = []
randomness = dict(deterministic=False, seed=2)
resume = False
test_cfg = dict()
test_dataloader = dict(
    batch_size=128,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        data_prefix='test',
        data_root='/work/data/cifar10-jpg',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackInputs'),
        ],
        type='CustomDataset'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = [
    dict(
        class_counts=[
            4990,
            2991,
            1793,
            1075,
            644,
            386,
            231,
            138,
            83,
            49,
        ],
        few_shot_thr=20,
        many_shot_thr=100,
        per_class=True,
        type='LongTailMetric'),
]
test_pipeline = [
    dict(type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=41)
train_dataloader = dict(
    batch_size=16,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        dataset=dict(
            data_prefix='train',
            data_root='/work/data/cifar10-jpg',
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(crop_size=32, padding=4, type='RandomCrop'),
                dict(direction='horizontal', prob=0.5, type='RandomFlip'),
                dict(type='PackInputs'),
            ],
            type='CustomDataset'),
        imbalance_factor=100.0,
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
    pin_memory=False,
    sampler=dict(shuffle=True, type='DefaultSampler'))
train_pipeline = [
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
work_dir = '/work/main/docs/benchmarks/cifar10-lt-if100-full/runs/2/ce_drw'
