# The stage-1 zoo recipe of the benchmarks (LDAM-DRW's CIFAR-LT CE run, as
# ../../_base_/schedules/cifar_lt_bs128_200e.py), with what a benchmark run
# needs on top: bfloat16 autocast (mmot's BF16AmpOptimWrapper, float32
# weights), the epoch-160 and -200 checkpoints kept for stage 2
# (KeepEpochsCheckpointHook), no look at the test set during training, one
# test at the end. The data config that a leaf adds beside it sets the
# dataloaders (bases may not share keys): see ../cifar100-lt-if100/.
_base_ = [
    '../../_base_/models/resnet32_cifar.py',
    '../../_base_/schedules/cifar_lt_bs128_200e.py',
    '../../_base_/default_runtime.py',
]
model = dict(head=dict(type='LinearClsHead'))
optim_wrapper = dict(type='BF16AmpOptimWrapper')
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=201)
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
custom_hooks = [dict(type='KeepEpochsCheckpointHook', epochs=[160, 200])]
randomness = dict(seed=0, deterministic=False)
