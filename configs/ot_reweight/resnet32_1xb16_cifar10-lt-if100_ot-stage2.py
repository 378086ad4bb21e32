# OT re-weighting as a decoupled stage 2 on CIFAR-10-LT (IF=100): 40 epochs
# of OT re-weighting of the classifier only, started from the stage-1
# checkpoint of the CE baseline (../baselines/
# resnet32_1xb128_cifar10-lt-if100_ce.py, 200 epochs, batch 128), like the
# other decoupled stage-2 baselines (../baselines/*_stage2-*.py), so every
# method starts from one stage-1 model. The training subset and the meta
# set are the same as the baseline's (same LongTailDataset seed).
# Settings of stage 2 as the paper's CIFAR-LT (alpha 2e-5, beta 1e-3,
# batch 16, combined cost, prototypes), but with the backbone frozen.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt.py',
    '../_base_/schedules/cifar_lt_stage2_40e.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt.py',
]
load_from = 'work_dirs/resnet32_1xb128_cifar10-lt-if100_ce/epoch_200.pth'
model = _base_.ot_model
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(
    ot_reweight=dict(_base_.ot_hook, start_epoch=0, freeze_backbone=True))
