# Table 2, "Combined + Prototype" (the paper's method; its top-1 error 54.97):
# the benchmark's ot_reweight (combined (1 - cos) + 0/1 label cost, the meta
# set's class prototypes as Q, a weight vector kept across the epochs; the
# decoupled stage 2 of the zoo model, beta 1000, alpha 0.01) at IF 200. The
# other rows of the table change one thing of this config.
_base_ = ['../cifar100-lt-if100/resnet32_1xb16_cifar100-lt-if100_ot-reweight.py']
imbalance_factor = 200  # not the IF-100 base's value
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar100-lt-if200_ce'
load_from = zoo + '/seed0_epoch200.pth'
