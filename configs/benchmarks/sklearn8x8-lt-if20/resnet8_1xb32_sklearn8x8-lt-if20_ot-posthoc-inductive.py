# Post-hoc OT of stage 1, inductive: estimated on the meta-set predictions
# (fit_file, set by the runner), applied to each test image alone.
_base_ = ['./resnet8_1xb32_sklearn8x8-lt-if20_ot-posthoc.py']
test_evaluator = [dict(type='PostHocMetric', method='ot', reg=1.0,
                       per_class=True, fit_file='meta.pkl')]
