# Baseline: repeat-factor sampling (Gupta et al., LVIS, CVPR 2019) with
# mmengine's ClassBalancedDataset: every image of class c is repeated
# ceil(max(1, sqrt(t / f_c))) times per epoch, f_c = the class's fraction of
# the training set, t = oversample_thr = 0.1 = 1 / K (classes rarer than a
# balanced share are repeated: x1 ... x6 here, 15.7K instead of 12.4K images
# per epoch). Otherwise as ./resnet32_1xb128_cifar10-lt-if100_ce.py.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100_ce.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=0.1,
        dataset=_base_.train_dataloader.dataset))
