# OT re-weighting on CIFAR-LT-100 (IF=50) as the authors' code
# (github.com/DandanGuo1993/reweight-imbalance-classification-with-OT,
# OT_train.py) runs it: softmax weights initialised with class-balanced
# weights, 0.5/0.5 combined cost with the squared one-hot label distance,
# mean-image prototypes, 10 x meta-set CE, last FC layer only, 90 stage-2
# epochs; see _base_/ot_reweight_cifar_lt_official.py for every difference.
# The paper's number for this setting: Table 1, CIFAR-LT-100, IF=50:
#   top-1 error 47.50 %.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_if50.py',
    '../_base_/schedules/cifar_lt_official_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt_official.py',
]
# the authors' model forwards and data (points 4 and 7 of the fragment)
model = dict(_base_.ot_model, head=dict(num_classes=100))
data_preprocessor = dict(_base_.authors_data_preprocessor, num_classes=100)
train_dataloader = dict(dataset=_base_.authors_train_dataset)
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=_base_.ot_hook)
