auto_scale_lr = dict(base_batch_size=128)
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
dataset_type = 'CIFAR10'
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2, type='CheckpointHook'),
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
experiment_name = 'seed_1_ldam_drw_test_1796298873241775111'
imbalance_factor = 100
launcher = 'none'
load_from = '/work/main/docs/benchmarks/cifar10-lt-if100-ldam-quick/runs/1/ldam_drw/epoch_10.pth'
log_level = 'WARNING'
model = dict(
    backbone=dict(depth=32, type='CifarResNet'),
    head=dict(
        in_channels=64,
        loss=dict(
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
            loss_weight=1.0,
            max_m=0.5,
            s=30.0,
            type='LDAMLoss'),
        normalized=True,
        num_classes=10,
        type='OTLinearClsHead'),
    neck=dict(type='GlobalAveragePooling'),
    type='ImageClassifier')
optim_wrapper = None
param_scheduler = None
randomness = dict(deterministic=False, seed=1)
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
train_cfg = None
train_dataloader = None
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
work_dir = '/work/main/docs/benchmarks/cifar10-lt-if100-ldam-quick/runs/1/ldam_drw/test'
