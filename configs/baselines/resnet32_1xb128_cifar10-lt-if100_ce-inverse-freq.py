# Baseline: class-weighted cross-entropy with inverse-frequency weights
# w_j ~ 1 / n_j (normalised to sum to K = 10), mmpretrain's CrossEntropyLoss
# with `class_weight`, which DRWHook from epoch 0 sets from the training set's
# class counts. Otherwise as ./resnet32_1xb128_cifar10-lt-if100_ce.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
default_hooks = dict(
    drw=dict(type='DRWHook', start_epoch=0, weighting='inverse_freq'))
