# Baseline: LDAM-DRW (Cao et al., NeurIPS 2019): the LDAM margin loss
# (max margin 0.5, scale 30) on a cosine classifier (OTLinearClsHead with
# normalized=True = LDAM's NormedLinear), plus deferred re-weighting: from
# epoch 160 the loss is weighted with the class-balanced (effective number,
# beta 0.9999) weights (mmot's LDAMLoss and DRWHook). Otherwise as
# ./resnet32_1xb128_cifar10-lt-if100_ce.py (the LDAM-DRW recipe).
# Paper: Table 1, "LDAM-DRW (results from [5])", CIFAR-LT-10, IF=100:
#   top-1 error 21.88 %.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
model = dict(
    head=dict(
        type='OTLinearClsHead',
        normalized=True,
        loss=dict(
            _delete_=True, type='LDAMLoss', max_m=0.5, s=30.0,
            loss_weight=1.0)))
custom_hooks = [
    dict(
        type='DRWHook', start_epoch=160, weighting='effective_num',
        beta=0.9999),
]
