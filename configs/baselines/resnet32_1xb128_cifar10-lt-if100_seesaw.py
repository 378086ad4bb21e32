# Baseline: Seesaw loss (Wang et al., CVPR 2021), mmpretrain's SeesawLoss
# (mitigation p = 0.8, compensation q = 2; class counts accumulated during
# training). Otherwise as ./resnet32_1xb128_cifar10-lt-if100_ce.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='SeesawLoss', num_classes=10, p=0.8, q=2.0,
            loss_weight=1.0)))
