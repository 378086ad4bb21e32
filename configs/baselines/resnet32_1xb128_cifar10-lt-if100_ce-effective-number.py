# Baseline: class-balanced cross-entropy (Cui et al., CVPR 2019), weights
# w_j ~ (1 - beta) / (1 - beta^n_j) with beta = 0.9999 (normalised to sum to
# K = 10), mmpretrain's CrossEntropyLoss with `class_weight`, which DRWHook
# from epoch 0 sets from the training set's class counts. Otherwise as
# ./resnet32_1xb128_cifar10-lt-if100_ce.py.
# Paper: Table 1, "CB, CE loss (results from [5])", CIFAR-LT-10, IF=100:
#   top-1 error 27.32 %.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
cb_beta = 0.9999
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
default_hooks = dict(
    drw=dict(type='DRWHook', start_epoch=0, weighting='effective_num',
             beta=cb_beta))
