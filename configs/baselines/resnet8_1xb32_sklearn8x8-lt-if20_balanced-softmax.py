# Offline baseline: Balanced Softmax on the long-tailed digits; otherwise as
# ./resnet8_1xb32_sklearn8x8-lt-if20_ce.py.
_base_ = ['./resnet8_1xb32_sklearn8x8-lt-if20_ce.py']
model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='BalancedSoftmaxLoss', loss_weight=1.0)))
