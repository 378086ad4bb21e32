# ce_drw at IF 200: the reference of Table 2's rows (same start, lr, batch,
# epochs and trained parameters), as ../cifar100-lt-if100/ at IF 100.
_base_ = ['../cifar100-lt-if100/resnet32_1xb16_cifar100-lt-if100_ce-drw.py']
imbalance_factor = 200  # not the IF-100 base's value
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
zoo = 'docs/benchmarks/zoo/resnet32_1xb128_cifar100-lt-if200_ce'
load_from = zoo + '/seed0_epoch200.pth'
