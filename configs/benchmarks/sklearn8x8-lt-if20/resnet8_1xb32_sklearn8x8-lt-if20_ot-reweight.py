# OT re-weighting (paper text) as a stage 2 of 15 epochs from stage 1's
# epoch-30 checkpoint (load_from, set by the runner): the demo's stage 2.
_base_ = [
    './resnet8_1xb32_sklearn8x8-lt-if20_ce.py',
    '../../_base_/ot_reweight.py',
]
model = dict(
    _base_.ot_model,
    reweighter=dict(
        _base_.ot_model.reweighter,
        learner=dict(type='WeightVector', lr=1.0, momentum=0.9)))
optim_wrapper = dict(type='SkipNonFiniteOptimWrapper')
param_scheduler = []
train_cfg = dict(max_epochs=15)
default_hooks = dict(
    ot_reweight=dict(_base_.ot_hook, start_epoch=0, stage2_lr=0.01,
                     freeze_backbone=True),
    checkpoint=dict(type='CheckpointHook', interval=15))
