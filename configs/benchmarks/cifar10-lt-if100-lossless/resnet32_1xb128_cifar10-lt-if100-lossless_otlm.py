# OTLM (Peng et al., ICLR 2022, Eq. 12) of the zoo model: its linear map
# fitted without labels on the test predictions, then OT on the test set.
# TRANSDUCTIVE (the whole test set, its class marginal); the paper fits on
# a validation set: ./*_otlm-inductive.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100-lossless_ce.py']
test_evaluator = [
    dict(type='PostHocMetric', method='otlm', reg=1.0,
         per_class=True, many_shot_thr=100, few_shot_thr=20),
]
