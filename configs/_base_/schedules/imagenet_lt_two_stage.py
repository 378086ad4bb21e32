# The OT re-weighting paper's ImageNet-LT schedule (Sec. 6.1, following
# MetaSAug): SGD (momentum 0.9, weight decay 5e-4), batch 128.
# Stage 1, epochs 0-199: lr x0.1 at epochs 60 and 80 (as the paper says).
#   The initial lr is not given; 0.05 is mmpretrain's ResNet-50 lr 0.1 for
#   batch 256 scaled linearly to batch 128.
# Stage 2, epochs 200-249: OTReweightHook(start_epoch=200, stage2_lr=2e-5,
#   freeze_backbone=True) trains the last FC layer only at alpha = 2e-5.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, begin=0, end=200, milestones=[60, 80],
    gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=250, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
