# Stage-1 zoo run and the `ce` row: plain CE on CIFAR-100-LT IF 100, the
# 200-epoch LDAM-DRW recipe (../_base_/stage1_zoo.py), epochs 160 and 200
# kept. Paper Table 1 CE row (from LDAM-DRW): top-1 error 61.54 (38.46).
#   python tools/train.py THIS --work-dir OUT/runs/S/stage1_ce \
#       --cfg-options randomness.seed=S
_base_ = [
    '../_base_/cifar100_lt_if100.py',
    '../_base_/stage1_zoo.py',
]
model = dict(head=dict(num_classes=100))
train_dataloader = dict(batch_size=128)
val_cfg = None
