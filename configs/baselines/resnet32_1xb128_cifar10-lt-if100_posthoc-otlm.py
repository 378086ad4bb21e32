# Post-hoc correction at test time, for tools/test.py on any checkpoint of a
# CIFAR-10-LT (IF=100) ResNet-32, e.g.
#   python tools/test.py \
#       configs/baselines/resnet32_1xb128_cifar10-lt-if100_posthoc-otlm.py \
#       work_dirs/resnet32_1xb128_cifar10-lt-if100_ce/epoch_200.pth
# OTLM (Peng et al., ICLR 2022, Eq. 12): a linear map of the
# logits fitted, without labels, so that the whole test set's predictions
# match a uniform class marginal (transductive: fitted on the evaluated
# predictions; set otlm_fit_file to fit on other dumped predictions).
# Reported: the corrected metrics (posthoc_*/long_tail/...) and, with
# report_raw, the uncorrected ones (posthoc_*/raw/long_tail/...).
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
test_evaluator = [
    dict(
        type='PostHocMetric',
        method='otlm',
        reg=1.0,
        report_raw=True),
]
