# Decoupled stage 2: classifier re-training, cRT (Kang et al., ICLR 2020):
# the backbone of the stage-1 model of ./resnet32_1xb128_cifar10-lt-if100_ce.py
# is loaded and frozen, the classifier is re-initialised and trained with
# class-balanced sampling (mmot's ClassBalancedSampler: a class uniformly,
# then an image of it) for 40 epochs, batch 16. A fresh classifier needs a
# larger lr than the fine-tuning variants: 0.01 with cosine decay to 0.
# Only the backbone is loaded (init_cfg with prefix 'backbone.'), not the
# classifier, so there is no load_from.
_base_ = ['./resnet32_1xb16_cifar10-lt-if100_stage2-ce.py']
load_from = None
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/resnet32_1xb128_cifar10-lt-if100_ce/'
            'epoch_200.pth',
            prefix='backbone.')))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler', seed=0))
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(
        type='CosineAnnealingLR', by_epoch=True, begin=0, end=40, T_max=40,
        eta_min=0),
]
