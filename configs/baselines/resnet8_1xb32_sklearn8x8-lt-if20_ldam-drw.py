# Offline baseline: LDAM-DRW on the long-tailed digits (cosine classifier,
# LDAM margins, class-balanced re-weighting from epoch 22 of 30); otherwise
# as ./resnet8_1xb32_sklearn8x8-lt-if20_ce.py.
_base_ = ['./resnet8_1xb32_sklearn8x8-lt-if20_ce.py']
model = dict(
    head=dict(
        type='OTLinearClsHead',
        normalized=True,
        loss=dict(
            _delete_=True, type='LDAMLoss', max_m=0.5, s=30.0,
            loss_weight=1.0)))
custom_hooks = [dict(type='DRWHook', start_epoch=22)]
