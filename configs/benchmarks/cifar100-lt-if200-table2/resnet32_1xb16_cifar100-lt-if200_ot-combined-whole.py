# Table 2, "Combined + Whole" (paper: top-1 error 54.98): Q uniform over all
# 10 x 100 meta images instead of the 100 class prototypes.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot-combined-prototype.py']
model = dict(reweighter=dict(meta_mode='whole'))
