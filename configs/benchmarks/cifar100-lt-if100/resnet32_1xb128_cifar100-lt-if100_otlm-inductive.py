# OTLM, inductive: the linear map and the OT class shift fitted on the zoo
# model's predictions on the held-out meta set (as its paper fits on a
# validation set), then applied to each test image alone.
#   tools/test.py THIS ZOO/seedS_epoch200.pth \
#       --cfg-options test_evaluator.0.fit_file=OUT/meta_S.pkl
_base_ = ['./resnet32_1xb128_cifar100-lt-if100_ce.py']
test_evaluator = [
    dict(type='PostHocMetric', method='otlm', reg=1.0,
         fit_file='work_dirs/cifar100-lt-if100/meta_0.pkl',
         per_class=True, many_shot_thr=100, few_shot_thr=20),
]
