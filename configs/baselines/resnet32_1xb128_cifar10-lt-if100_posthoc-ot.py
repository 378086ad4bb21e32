# Post-hoc correction at test time, for tools/test.py on any checkpoint of a
# CIFAR-10-LT (IF=100) ResNet-32, e.g.
#   python tools/test.py \
#       configs/baselines/resnet32_1xb128_cifar10-lt-if100_posthoc-ot.py \
#       work_dirs/resnet32_1xb128_cifar10-lt-if100_ce/epoch_200.pth
# post-hoc OT correction (Peng et al., ICLR 2022, Eq. 11):
# the predictions of the whole test set are transported onto a uniform class
# marginal (entropic OT, lambda = 1).
# Reported: the corrected metrics (posthoc_*/long_tail/...) and, with
# report_raw, the uncorrected ones (posthoc_*/raw/long_tail/...).
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
test_evaluator = [
    dict(
        type='PostHocMetric',
        method='ot',
        reg=1.0,
        report_raw=True),
]
