# OT re-weighting over the whole training set (GlobalWeightVector: the
# paper's costs, P(w) over all N training examples, a global OT step every
# 10 iterations, mirror step 1.0 with the bold-driver step size).
_base_ = ['./resnet32_1xb16_cifar10-lt-if100-lossless_ot-reweight.py']
model = dict(
    reweighter=dict(
        learner=dict(_delete_=True, type='GlobalWeightVector', lr=1.0,
                     interval=10)))
