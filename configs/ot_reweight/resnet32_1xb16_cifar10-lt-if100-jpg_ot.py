# OT re-weighting, ResNet-32 on CIFAR-10-LT (IF=100) read from one folder of
# JPEGs per class (data/cifar10-jpg, e.g. ../shared/data/cifar10-jpg.tar.gz
# extracted and linked there), otherwise as
# ./resnet32_1xb16_cifar10-lt-if100_ot.py.
# The paper's number (Table 1, CIFAR-LT-10, IF=100: top-1 error 18.13 %) is
# for the binary CIFAR-10; JPEG re-encoding costs a little accuracy, so
# compare methods on this data with each other.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_folder.py',
    '../_base_/schedules/cifar_lt_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt.py',
]
model = _base_.ot_model
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=_base_.ot_hook)
