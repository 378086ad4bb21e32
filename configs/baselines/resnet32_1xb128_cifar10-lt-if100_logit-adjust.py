# Baseline: logit-adjusted loss (Menon et al., ICLR 2021): cross-entropy on
# logits + tau * log pi_j, tau = 1 (mmot's LogitAdjustLoss). Otherwise as
# ./resnet32_1xb128_cifar10-lt-if100_ce.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='LogitAdjustLoss', tau=1.0,
            loss_weight=1.0)))
