# Post-hoc correction at test time, for tools/test.py on any checkpoint of a
# CIFAR-10-LT (IF=100) ResNet-32, e.g.
#   python tools/test.py \
#       configs/baselines/resnet32_1xb128_cifar10-lt-if100_posthoc-logit-adjust.py \
#       work_dirs/resnet32_1xb128_cifar10-lt-if100_ce/epoch_200.pth
# post-hoc logit adjustment (Menon et al., ICLR 2021):
# log p_j - tau * log pi_j with the training class distribution pi, tau = 1.
# Reported: the corrected metrics (posthoc_*/long_tail/...) and, with
# report_raw, the uncorrected ones (posthoc_*/raw/long_tail/...).
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
test_evaluator = [
    dict(
        type='PostHocMetric',
        method='logit_adjust',
        tau=1.0,
        report_raw=True),
]
