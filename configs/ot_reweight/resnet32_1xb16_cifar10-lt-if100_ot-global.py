# OT re-weighting over the whole training set (paper Eq. 4-6 as written,
# "beyond the paper": every implementation, the authors' too, approximates
# it per batch): the paper-text costs ((1 - cos) + 0/1 label, feature
# prototypes, lambda = 0.1), with P(w) a measure over all N training examples
# (mmot GlobalWeightVector: feature bank refreshed as batches pass, a global
# OT step every 10 iterations, loss weight N w_i / B). With the label cost
# its optimum is class balance, which the per-batch OT cannot reach at batch
# 16 (docs/benchmarks/README.md, "Why OT re-weighting does not win here").
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt.py',
    '../_base_/schedules/cifar_lt_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight_cifar_lt.py',
]
model = dict(
    _base_.ot_model,
    reweighter=dict(
        _base_.ot_model.reweighter,
        learner=dict(type='GlobalWeightVector', lr=1.0, interval=10)))
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=_base_.ot_hook)
