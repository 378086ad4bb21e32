# Epochs 160 -> 200 of the zoo's CE schedule, started from the zoo's seed-0
# epoch-160 weights (trained in bfloat16 autocast). The pair of configs differs
# in the precision of these 40 epochs only, so the pair measures what bfloat16
# costs in the low-lr phase of the schedule. The weights-only zoo checkpoint
# holds no optimiser state, so both start with a fresh momentum buffer and a
# fresh scheduler: lr 0.1 x 0.01 for 20 epochs, then x 0.01 again (the zoo's
# milestones 160 and 180).
_base_ = ['../resnet32_1xb128_cifar10-lt-if100-jpg_ce/config.py']

data_root = 'data/cifar10-jpg'
load_from = ('docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce/'
             'seed0_epoch160.pth')
randomness = dict(seed=0, deterministic=False)
experiment_name = 'zoo_seed0_e160to200'
work_dir = 'work_dirs/precision_check/bf16'

optim_wrapper = dict(type='BF16AmpOptimWrapper', optimizer=dict(lr=0.001))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=40, milestones=[20],
         gamma=0.01)
]
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=41)
custom_hooks = []
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
test_dataloader = dict(dataset=dict(data_root=data_root))
