# Post-hoc logit adjustment (tau 1) of the zoo model, each test image alone
# (inductive): tools/test.py THIS ZOO/seedS_epoch200.pth
_base_ = ['./resnet32_1xb128_cifar10-lt-if100-lossless_ce.py']
test_evaluator = [
    dict(type='PostHocMetric', method='logit_adjust', tau=1.0,
         per_class=True, many_shot_thr=100, few_shot_thr=20),
]
