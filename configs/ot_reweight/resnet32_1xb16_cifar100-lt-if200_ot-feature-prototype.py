# Ablation of OT re-weighting (paper Table 2), ResNet-32 on CIFAR-LT-100,
# IF=200: the feature-aware cost only (1 - cosine of the features), so the
# learnt weights are instance-level.
# Everything else as ./resnet32_1xb16_cifar100-lt-if200_ot.py
# (combined cost, prototypes, weight vector: top-1 error 54.97 %).
# Reproduces: Table 2, "Feature +Prototype": top-1 error 55.04 %.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot.py']
model = dict(
    reweighter=dict(
        cost=dict(_delete_=True, type='FeatureCost', metric='cosine')))
