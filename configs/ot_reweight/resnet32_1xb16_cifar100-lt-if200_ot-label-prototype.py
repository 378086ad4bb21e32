# Ablation of OT re-weighting (paper Table 2), ResNet-32 on CIFAR-LT-100,
# IF=200: the label-aware cost only (0/1 label distance), so the learnt
# weights are class-level.
# Everything else as ./resnet32_1xb16_cifar100-lt-if200_ot.py
# (combined cost, prototypes, weight vector: top-1 error 54.97 %).
# Reproduces: Table 2, "Label +Prototype": top-1 error 55.06 %.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot.py']
model = dict(
    reweighter=dict(cost=dict(_delete_=True, type='LabelCost', mode='01')))
