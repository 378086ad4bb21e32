# Decoupled stage 2 of the benchmarks: the classifier alone, from a stage-1
# zoo model (load_from, set per seed by the runner), 40 epochs at batch 16,
# SGD lr 0.01 (alpha, chosen on the CIFAR-10-LT validation split:
# docs/benchmarks/tuning-val-if100-seed0), momentum 0.9, weight decay 5e-4,
# constant; bfloat16 autocast; the frozen backbone's outputs of 10 augmented
# views of the training set cached once (FeatureCacheHook, equal to the
# uncached run: tests/test_engine/test_feature_cache.py); one test at the
# end. OTImageClassifier is ImageClassifier until an OTReweightHook starts
# its stage 2; the non-OT rows use it for the feature cache.
_base_ = [
    '../../_base_/models/resnet32_cifar.py',
    '../../_base_/default_runtime.py',
]
model = dict(
    type='OTImageClassifier',
    backbone=dict(frozen_stages=3),
    head=dict(type='LinearClsHead'))
optim_wrapper = dict(
    type='BF16AmpOptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=41)
val_cfg = None
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
custom_hooks = [
    dict(type='FeatureCacheHook', views=10, start_epoch=0, seed=0)
]
randomness = dict(seed=0, deterministic=False)
auto_scale_lr = dict(base_batch_size=16)
