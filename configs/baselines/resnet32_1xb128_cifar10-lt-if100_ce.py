# Baseline: plain cross-entropy, ResNet-32 on CIFAR-10-LT (IF=100) with the
# LDAM-DRW recipe (200 epochs, batch 128, lr 0.1 x0.01 at 160 and 180, weight
# decay 2e-4), mmpretrain's LinearClsHead + CrossEntropyLoss.
# Its epoch_200.pth is the stage-1 model of the decoupled stage-2 configs
# (*_stage2-*.py, ../ot_reweight/*_ot-stage2.py) and the input of the post-hoc
# configs (*_posthoc-*.py).
# Paper: Table 1, "CE loss (results from [5])", CIFAR-LT-10, IF=100:
#   top-1 error 29.86 %.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt.py',
    '../_base_/schedules/cifar_lt_bs128_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(type='LinearClsHead'))
train_dataloader = dict(batch_size=128)
