# Stage-1 zoo run and the `ce` row: plain CE on the lossless CIFAR-10-LT
# IF 100, the 200-epoch LDAM-DRW recipe (../_base_/stage1_zoo.py), epochs
# 160 and 200 kept (the zoo's first seeds were trained with the same recipe
# by tools/benchmark.py: docs/benchmarks/zoo/README.md). Paper Table 1 CE
# row (from LDAM-DRW): top-1 error 29.86 (70.14).
#   python tools/train.py THIS --work-dir OUT/runs/S/stage1_ce \
#       --cfg-options randomness.seed=S
_base_ = [
    '../_base_/cifar10_lt_if100_lossless.py',
    '../_base_/stage1_zoo.py',
]
model = dict(head=dict(num_classes=10))
train_dataloader = dict(batch_size=128)
val_cfg = None
