# Post-hoc OT of stage 1 (TRANSDUCTIVE: the whole test set, its marginal).
_base_ = ['./resnet8_1xb32_sklearn8x8-lt-if20_ce.py']
test_evaluator = [dict(type='PostHocMetric', method='ot', reg=1.0,
                       per_class=True)]
