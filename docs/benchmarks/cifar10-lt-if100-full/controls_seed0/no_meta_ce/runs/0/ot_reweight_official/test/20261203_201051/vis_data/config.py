auto_scale_lr = dict(base_batch_size=16)
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
experiment_name = 'seed_0_ot_reweight_official_test_1796328651436900086'
imbalance_factor = 100
launcher = 'none'
load_from = '/work/main/docs/benchmarks/cifar10-lt-if100-full/controls_seed0/no_meta_ce/runs/0/ot_reweight_official/epoch_90.pth'
log_level = 'INFO'
model = dict(
    backbone=dict(depth=32, type='CifarResNet'),
    head=dict(
        in_channels=64,
        loss=dict(loss_weight=1.0, type='CrossEntropyLoss'),
        num_classes=10,
        type='OTLinearClsHead'),
    meta_forward_mode='train',
    meta_loss_source='features',
    meta_loss_weight=0.0,
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
            loss_weights='raw',
            lr=0.01,
            momentum=0.0,
            parametrization='softmax',
            step='per_batch',
            type='WeightVector',
            weight_decay=0.0005),
        max_iter=200,
        meta_mode='prototype',
        reg=0.1,
        seed=0,
        solver='authors'),
    type='OTImageClassifier')
optim_wrapper = None
ot_hook = dict(
    freeze_backbone=False,
    stage2_lr=2e-05,
    start_epoch=200,
    type='OTReweightHook')
ot_model = dict(
    meta_loss_weight=0.0,
    prototype_source='feature',
    reweighter=dict(
        cost=dict(
            feature_coef=1.0,
            label_coef=1.0,
            label_mode='01',
            metric='cosine',
            type='CombinedCost'),
        learner=dict(
            init='uniform',
            lr=0.001,
            momentum=0.9,
            parametrization='normalize',
            type='WeightVector'),
        max_iter=200,
        meta_mode='prototype',
        reg=0.1),
    type='OTImageClassifier')
ot_optim_wrapper = dict(type='SkipNonFiniteOptimWrapper')
param_scheduler = None
randomness = dict(deterministic=False, seed=0)
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
work_dir = '/work/main/docs/benchmarks/cifar10-lt-if100-full/controls_seed0/no_meta_ce/runs/0/ot_reweight_official/test'
