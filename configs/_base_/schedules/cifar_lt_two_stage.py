# The OT re-weighting paper's CIFAR-LT schedule (Sec. 6.1, following
# MetaSAug): SGD (momentum 0.9, weight decay 5e-4), batch 16.
# Stage 1, epochs 0-199: lr 0.1 (5-epoch linear warm-up as in the LDAM-DRW /
#   MetaSAug code), x0.01 at epochs 160 and 180.
# Stage 2, epochs 200-239: OTReweightHook(start_epoch=200, stage2_lr=2e-5)
#   ends these schedulers and holds the learning rate alpha = 2e-5.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.2,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=200,
        milestones=[160, 180],
        gamma=0.01),
]
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16)
