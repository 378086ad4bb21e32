# Baseline: focal loss (Lin et al., ICCV 2017), mmpretrain's (sigmoid)
# FocalLoss with gamma 2 and alpha 0.25. Otherwise as
# ./resnet32_1xb128_cifar10-lt-if100_ce.py.
# Paper: Table 1, "Focal loss (results from [4])", CIFAR-LT-10, IF=100:
#   top-1 error 29.62 %.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='FocalLoss', gamma=2.0, alpha=0.25,
            loss_weight=1.0)))
