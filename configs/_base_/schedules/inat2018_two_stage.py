# The OT re-weighting paper's iNaturalist-2018 schedule (appendix B.2):
# pretrained ResNet-50, SGD (momentum 0.9, weight decay 5e-3), batch 64.
# Stage 1, epochs 0-59: lr 0.01, x0.1 every 20 epochs. (The paper does not
#   give the stage-1 length; 60 epochs = three steps of the decay.)
# Stage 2, epochs 60-259: OTReweightHook(start_epoch=60, stage2_lr=1e-4,
#   freeze_backbone=True) trains the last FC layer only for 200 epochs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-3))
param_scheduler = dict(
    type='StepLR', by_epoch=True, begin=0, end=60, step_size=20, gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=260, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
