# Demo of the authors' recipe (see _base_/ot_reweight_cifar_lt_official.py,
# points 1-6) on long-tailed 8x8 digits, offline: the same stage 1 as the
# paper-text demo (resnet8_1xb32_digits-lt-if20_ot.py, 30 epochs of CE),
# then 15 epochs of the authors' stage 2: raw class-balanced-initialised
# weights in the loss, a per-batch OT step on softmax(w_B), 10 x the CE of
# the (augmented, re-drawn each epoch) meta images forwarded through the
# network in train mode every iteration (logged as loss_meta), the
# classifier trained with Nesterov SGD, BatchNorm left in train mode, their
# Sinkhorn stopping rule. The data (digits, its pipeline and normalisation)
# stays the demo's: point 7 is CIFAR-specific.
# The only departure: alpha = 0.01 as in the paper-text demo instead of their
# 2e-5 (15 short epochs at 2e-5 do not move the classifier).
_base_ = [
    '../_base_/models/resnet8_digits.py',
    '../_base_/datasets/digits_lt-if20.py',
    '../_base_/schedules/digits_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt_official.py',
]
model = _base_.ot_model
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(
    ot_reweight=dict(_base_.ot_hook, start_epoch=30, stage2_lr=0.01),
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=15))
randomness = dict(seed=0, deterministic=False)
find_unused_parameters = True
