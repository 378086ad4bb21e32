# Table 2, "Feature + Prototype" (paper: top-1 error 55.04): the feature
# cost (1 - cos) alone.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot-combined-prototype.py']
model = dict(
    reweighter=dict(
        cost=dict(_delete_=True, type='FeatureCost', metric='cosine')))
