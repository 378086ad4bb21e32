# Runtime settings shared by the mmot configs (mmpretrain's defaults plus the
# import of mmot, so that its modules and the `mmot::` scope are available).

# Build modules from mmpretrain's registries (mmot registers into them).
default_scope = 'mmpretrain'

# Import mmot when the config is loaded by any OpenMMLab tool.
custom_imports = dict(imports=['mmot'], allow_failed_imports=False)

default_hooks = dict(
    # record the time of every iteration.
    timer=dict(type='IterTimerHook'),
    # print the log every 100 iterations.
    logger=dict(type='LoggerHook', interval=100),
    # step the parameter schedulers.
    param_scheduler=dict(type='ParamSchedulerHook'),
    # save a checkpoint every epoch.
    checkpoint=dict(type='CheckpointHook', interval=1),
    # set the sampler seed in distributed environments.
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # visualize validation results (set enable=True to use it).
    visualization=dict(type='VisualizationHook', enable=False),
    # the training class counts, read from the training dataset into the
    # losses and metrics built without them (no config types them).
    class_counts=dict(type='ClassCountsHook'),
)

env_cfg = dict(
    # whether to enable cudnn benchmark.
    cudnn_benchmark=False,
    # multi-process settings.
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # distributed settings (use `env_cfg.dist_cfg.backend=gloo` on CPU).
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'

# checkpoint to load weights from.
load_from = None
# whether to resume training from `load_from` (or the latest checkpoint).
resume = False

# random seed; set deterministic=True for reproducible (slower) runs.
randomness = dict(seed=None, deterministic=False)
