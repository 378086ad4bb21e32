# Baseline: class-balanced cross-entropy (Cui et al., CVPR 2019), weights
# w_j ~ (1 - beta) / (1 - beta^n_j) with beta = 0.9999 (normalised to sum to
# K = 10), mmpretrain's CrossEntropyLoss with `class_weight`. Otherwise as
# ./resnet32_1xb128_cifar10-lt-if100_ce.py.
# Paper: Table 1, "CB, CE loss (results from [5])", CIFAR-LT-10, IF=100:
#   top-1 error 27.32 %.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
cb_beta = 0.9999
class_weight = [(1 - cb_beta) / (1 - cb_beta**n) for n in _base_.class_counts]
class_weight = [w / sum(class_weight) * 10 for w in class_weight]
model = dict(
    head=dict(
        loss=dict(
            type='CrossEntropyLoss', loss_weight=1.0,
            class_weight=class_weight)))
