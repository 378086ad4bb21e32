# Baseline: class-weighted cross-entropy with inverse-frequency weights
# w_j ~ 1 / n_j (normalised to sum to K = 10), mmpretrain's CrossEntropyLoss
# with `class_weight`. Otherwise as ./resnet32_1xb128_cifar10-lt-if100_ce.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
class_weight = [(1 / n) / sum(1 / m for m in _base_.class_counts) * 10
                for n in _base_.class_counts]
model = dict(
    head=dict(
        loss=dict(
            type='CrossEntropyLoss', loss_weight=1.0,
            class_weight=class_weight)))
