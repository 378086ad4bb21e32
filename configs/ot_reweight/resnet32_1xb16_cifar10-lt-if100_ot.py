# OT re-weighting (Guo et al., NeurIPS 2022), ResNet-32 on CIFAR-LT-10 with
# imbalance factor 100, with the paper's settings (Sec. 6.1): 200 epochs of CE
# (stage 1), then 40 epochs of OT re-weighting (combined cost, prototypes,
# weight vector, alpha 2e-5, beta 1e-3, batch 16).
# Reproduces: Table 1, "Our method (Weight Vector)", CIFAR-LT-10, IF=100:
#   top-1 error 18.13 % (mean of 5 runs), i.e. accuracy/top1 = 81.87.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt.py',
    '../_base_/schedules/cifar_lt_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt.py',
]
model = _base_.ot_model
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=_base_.ot_hook)
