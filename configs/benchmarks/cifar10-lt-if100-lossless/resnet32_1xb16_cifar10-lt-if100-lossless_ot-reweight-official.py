# OT re-weighting as the authors' code computes its stage 2
# (../../_base_/ot_reweight_cifar_lt_official.py, points 1-6): from the zoo's
# epoch-160 model (their range(160, 250)), 90 epochs, tested every epoch
# (the last epoch is the row; the best test epoch is reported apart, as
# test-set selection). The split and normalisation (point 7) stay the
# zoo's, so every row shares one stage 1 and one meta set; the training
# augmentation is the authors' (random crops of the reflect-padded image:
# PadModeRandomCrop, as mmpretrain's RandomCrop pads with zeros), also for
# the meta images it forwards. Uncached (BatchNorm in train mode).
_base_ = [
    '../_base_/cifar10_lt_if100_lossless.py',
    '../_base_/stage2_decoupled.py',
    '../../_base_/ot_reweight_cifar_lt_official.py',
]
model = dict(
    _base_.ot_model,
    backbone=dict(frozen_stages=-1),  # frozen by the hook, BN in train mode
    head=dict(num_classes=10))
default_hooks = dict(ot_reweight=dict(_base_.ot_hook, start_epoch=0))
train_dataloader = dict(
    batch_size=16,
    dataset=dict(
        dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PadModeRandomCrop', crop_size=32, padding=4,
                 padding_mode='reflect'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ])))
train_cfg = dict(max_epochs=90, val_interval=1)
val_dataloader = dict(_base_.test_dataloader, _delete_=True)
val_evaluator = _base_.test_evaluator
val_cfg = dict(_delete_=True)
custom_hooks = []
load_from = _base_.zoo + '/seed0_epoch160.pth'
