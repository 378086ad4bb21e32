# Table 2, "Combined + Random sample" (paper: top-1 error 55.03): Q is one
# meta image per class, drawn again at every iteration.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot-combined-prototype.py']
model = dict(reweighter=dict(meta_mode='random'))
