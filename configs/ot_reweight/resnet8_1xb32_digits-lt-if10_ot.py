# Demo: OT re-weighting on long-tailed 8x8 digits, fully offline
# (scikit-learn's digits; imbalance factor 10; balanced test set).
# Stage 1: 40 epochs of plain CE. Stage 2: 20 epochs of OT re-weighting
# (combined cost, prototypes, weight vector) with the classifier only.
# The log prints accuracy/top1 on the balanced test set after stage 1
# (epoch 40) and after stage 2 (epoch 60).
_base_ = [
    '../_base_/models/resnet8_digits.py',
    '../_base_/datasets/digits_lt.py',
    '../_base_/schedules/digits_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight.py',
]

custom_hooks = [
    dict(
        type='OTReweightHook',
        start_epoch=40,
        cost=dict(type='CombinedCost'),
        learner=dict(type='WeightVector', lr=1e-3, momentum=0.9),
        reg=0.1,
        meta_mode='prototype',
        stage2_lr=0.01,
        freeze_backbone=True),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=20))
