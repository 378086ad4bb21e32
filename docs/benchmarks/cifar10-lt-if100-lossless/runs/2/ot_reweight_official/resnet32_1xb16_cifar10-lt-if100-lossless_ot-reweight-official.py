authors_data_preprocessor = dict(
    mean=[
        125.3,
        123.0,
        113.9,
    ],
    num_classes=10,
    std=[
        63.0,
        62.1,
        66.7,
    ],
    to_rgb=False)
authors_train_dataset = dict(
    cut_seed=42,
    dataset=dict(pipeline=[
        dict(
            crop_size=32,
            padding=4,
            padding_mode='reflect',
            type='PadModeRandomCrop'),
        dict(direction='horizontal', prob=0.5, type='RandomFlip'),
        dict(type='PackInputs'),
    ]),
    seed=6,
    split='authors')
auto_scale_lr = dict(base_batch_size=16)
custom_hooks = []
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
    ot_reweight=dict(
        freeze_backbone=True,
        freeze_mode='train',
        meta_loader=dict(pipeline='train'),
        stage2_lr=2e-05,
        stage2_sgd=dict(momentum=0.9, nesterov=True, weight_decay=0.0005),
        start_epoch=0,
        type='OTReweightHook'),
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
load_from = '/tmp/bench10/runs/2/ot_reweight_official/epoch_49.pth'
log_level = 'INFO'
model = dict(
    backbone=dict(depth=32, frozen_stages=-1, type='CifarResNet'),
    head=dict(
        in_channels=64,
        loss=dict(loss_weight=1.0, type='CrossEntropyLoss'),
        num_classes=10,
        type='LinearClsHead'),
    meta_forward_mode='train',
    meta_loss_source='images',
    meta_loss_weight=10.0,
    neck=dict(type='GlobalAveragePooling'),
    ot_features='eval_forward',
    prototype_source='image',
    reweighter=dict(
        authors_thresh=0.1,
        cost=dict(
            feature_coef=0.5,
            label_coef=0.5,
            label_mode='mse',
            metric='cosine',
            type='CombinedCost'),
        learner=dict(
            init='effective_number',
            lr=0.01,
            type='AuthorsWeightVector',
            weight_decay=0.0005),
        max_iter=200,
        meta_mode='prototype',
        reg=0.1,
        seed=2,
        solver='authors'),
    type='AuthorsOTImageClassifier')
optim_wrapper = dict(
    optimizer=dict(lr=0.01, momentum=0.9, type='SGD', weight_decay=0.0005),
    type='BF16AmpOptimWrapper')
ot_hook = dict(
    freeze_backbone=True,
    freeze_mode='train',
    meta_loader=dict(pipeline='train'),
    stage2_lr=2e-05,
    stage2_sgd=dict(momentum=0.9, nesterov=True, weight_decay=0.0005),
    start_epoch=160,
    type='OTReweightHook')
ot_model = dict(
    meta_forward_mode='train',
    meta_loss_source='images',
    meta_loss_weight=10.0,
    ot_features='eval_forward',
    prototype_source='image',
    reweighter=dict(
        authors_thresh=0.1,
        cost=dict(
            feature_coef=0.5,
            label_coef=0.5,
            label_mode='mse',
            metric='cosine',
            type='CombinedCost'),
        learner=dict(
            init='effective_number',
            lr=0.01,
            type='AuthorsWeightVector',
            weight_decay=0.0005),
        max_iter=200,
        meta_mode='prototype',
        reg=0.1,
        solver='authors'),
    type='AuthorsOTImageClassifier')
ot_optim_wrapper = dict(type='SkipNonFiniteOptimWrapper')
param_scheduler = []
randomness = dict(deterministic=False, seed=2)
resume = 'auto'
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
        many_shot_thr=100,
        per_class=True,
        type='LongTailMetric'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
train_dataloader = dict(
    batch_size=16,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        dataset=dict(
            data_prefix='train',
            data_root='data/cifar10/png',
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(
                    crop_size=32,
                    padding=4,
                    padding_mode='reflect',
                    type='PadModeRandomCrop'),
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
    pin_memory=False,
    sampler=dict(shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(crop_size=32, padding=4, type='RandomCrop'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
val_cfg = dict()
val_dataloader = dict(
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
val_evaluator = [
    dict(
        few_shot_thr=20,
        many_shot_thr=100,
        per_class=True,
        type='LongTailMetric'),
]
vis_backends = [
    dict(type='LocalVisBackend'),
]
visualizer = dict(
    type='UniversalVisualizer', vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = '/tmp/bench10/runs/2/ot_reweight_official'
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-lossless_ce'
