# Ablation of OT re-weighting (paper Table 2), ResNet-32 on CIFAR-LT-100,
# IF=200: the batch weights are re-estimated from uniform at every
# iteration (ScratchWeights: 10 SGD steps on softmax scores) instead of
# a weight vector maintained and updated throughout training.
# Everything else as ./resnet32_1xb16_cifar100-lt-if200_ot.py
# (combined cost, prototypes, weight vector: top-1 error 54.97 %).
# Reproduces: Table 2, "Combined +Prototype+scratch": top-1 error 55.07 %.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot.py']
model = dict(
    reweighter=dict(
        learner=dict(
            _delete_=True, type='ScratchWeights', lr=1.0, num_steps=10,
            momentum=0.9)))
