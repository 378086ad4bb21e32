# Ablation of OT re-weighting (paper Table 2), ResNet-32 on CIFAR-LT-100,
# IF=200: Q is one meta sample per class, drawn at random every
# iteration, instead of the class prototypes.
# Everything else as ./resnet32_1xb16_cifar100-lt-if200_ot.py
# (combined cost, prototypes, weight vector: top-1 error 54.97 %).
# Reproduces: Table 2, "Combined +Random sample": top-1 error 55.03 %.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot.py']
model = dict(reweighter=dict(meta_mode='random'))
