# Demo: OT re-weighting on long-tailed 8x8 digits, fully offline
# (scikit-learn's digits; imbalance factor 20; balanced test set).
# Stage 1: 30 epochs of plain CE. Stage 2: 15 epochs of OT re-weighting
# (combined cost, prototype meta set, weight vector kept across epochs),
# classifier only. The log prints accuracy/top1 on the balanced test set
# after stage 1 (epoch 30) and after stage 2 (epoch 45).
_base_ = [
    '../_base_/models/resnet8_digits.py',
    '../_base_/datasets/digits_lt-if20.py',
    '../_base_/schedules/digits_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight.py',
]

model = dict(
    _base_.ot_model,
    reweighter=dict(
        cost=dict(type='CombinedCost'),
        learner=dict(type='WeightVector', lr=1.0, momentum=0.9),
        reg=0.1,
        meta_mode='prototype'))
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(
    ot_reweight=dict(
        _base_.ot_hook, start_epoch=30, stage2_lr=0.01, freeze_backbone=True),
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=15))
randomness = dict(seed=0, deterministic=False)
# stage 2 freezes the backbone: under DDP (tools/dist_train.sh) the wrapper
# must not wait for its gradients
find_unused_parameters = True
