# Table 2, "Combined + Prototype + scratch" (paper: top-1 error 55.07): the
# batch's weights re-estimated from uniform at every iteration
# (ScratchWeights: 10 SGD steps of beta 1 on softmax scores; beta 1 was the
# better of 1 and 100 on the CIFAR-10-LT validation split,
# docs/benchmarks/tuning-val-if100-seed0) instead of a weight vector kept
# across the epochs.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot-combined-prototype.py']
model = dict(
    reweighter=dict(
        learner=dict(
            _delete_=True, type='ScratchWeights', lr=1.0, num_steps=10,
            momentum=0.9)))
