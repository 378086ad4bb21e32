# Baseline: Balanced Softmax (Ren et al., NeurIPS 2020, "BALMS"): cross-entropy
# on logits + log n_j (mmot's BalancedSoftmaxLoss). Otherwise as
# ./resnet32_1xb128_cifar10-lt-if100_ce.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='BalancedSoftmaxLoss', loss_weight=1.0)))
