# Ablation of OT re-weighting (paper Table 2), ResNet-32 on CIFAR-LT-100,
# IF=200: Q is uniform over all 10 x 100 meta samples (Eq. 5) instead of
# the 100 class prototypes (Eq. 12).
# Everything else as ./resnet32_1xb16_cifar100-lt-if200_ot.py
# (combined cost, prototypes, weight vector: top-1 error 54.97 %).
# Reproduces: Table 2, "Combined+ Whole": top-1 error 54.98 %.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot.py']
model = dict(reweighter=dict(meta_mode='whole'))
