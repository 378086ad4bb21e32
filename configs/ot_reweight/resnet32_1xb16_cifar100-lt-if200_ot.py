# OT re-weighting (Guo et al., NeurIPS 2022), ResNet-32 on CIFAR-LT-100 with
# imbalance factor 200, with the paper's settings (Sec. 6.1): 200 epochs of CE
# (stage 1), then 40 epochs of OT re-weighting (combined cost, prototypes,
# weight vector, alpha 2e-5, beta 1e-3, batch 16).
# Reproduces: Table 1, "Our method (Weight Vector)", CIFAR-LT-100, IF=200:
#   top-1 error 54.97 % (mean of 5 runs), i.e. accuracy/top1 = 45.03.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_if200.py',
    '../_base_/schedules/cifar_lt_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt.py',
]
model = dict(_base_.ot_model, head=dict(num_classes=100))
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=_base_.ot_hook)
