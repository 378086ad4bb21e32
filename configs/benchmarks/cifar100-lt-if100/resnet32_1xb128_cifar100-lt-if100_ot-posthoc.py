# Post-hoc OT (Peng et al., ICLR 2022, Eq. 11, lambda 1) of the zoo model.
# TRANSDUCTIVE: it needs the whole test set at once and assumes its class
# marginal (uniform); ranked apart from the inductive rows.
_base_ = ['./resnet32_1xb128_cifar100-lt-if100_ce.py']
test_evaluator = [
    dict(type='PostHocMetric', method='ot', reg=1.0,
         per_class=True, many_shot_thr=100, few_shot_thr=20),
]
