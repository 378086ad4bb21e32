# cRT (Kang et al., ICLR 2020): the classifier re-initialised and
# re-trained with class-balanced sampling on the frozen zoo backbone, lr
# 0.01 cosine to 0 over the 40 epochs.
#   tools/train.py THIS --cfg-options \
#       model.backbone.init_cfg.checkpoint=ZOO/seedS_epoch200.pth \
#       randomness.seed=S train_dataloader.sampler.seed=S
_base_ = [
    '../_base_/cifar10_lt_if100_lossless.py',
    '../_base_/stage2_decoupled.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint=_base_.zoo + '/seed0_epoch200.pth')),
    head=dict(num_classes=10))
train_dataloader = dict(
    batch_size=16,
    sampler=dict(_delete_=True, type='ClassBalancedSampler', seed=0))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=40, T_max=40,
         eta_min=0),
]
