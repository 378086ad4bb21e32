# Stage-1 zoo run and the `ce` row of the Table 2 reproduction: plain CE on
# CIFAR-100-LT IF 200 (490 -> 2 images per class after the 10 meta images),
# the 200-epoch recipe of ../cifar100-lt-if100/ (epochs 160 and 200 kept).
#   python tools/train.py THIS --work-dir OUT/runs/S/stage1_ce \
#       --cfg-options randomness.seed=S
_base_ = ['../cifar100-lt-if100/resnet32_1xb128_cifar100-lt-if100_ce.py']
imbalance_factor = 200  # not the IF-100 base's value
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar100-lt-if200_ce'
