# The OT re-weighting paper's Places-LT schedule (Sec. 6.1, following
# Decoupling): ImageNet-pretrained ResNet-152, SGD (momentum 0.9, weight
# decay 5e-3), batch 32.
# Stage 1, epochs 0-29: lr 0.01, x0.1 every 10 epochs. (The paper does not
#   give the stage-1 length; 30 epochs is the Decoupling recipe's.)
# Stage 2, epochs 30-79: OTReweightHook(start_epoch=30, stage2_lr=1e-4,
#   freeze_backbone=True) trains the last FC layer only for 50 epochs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-3))
param_scheduler = dict(
    type='StepLR', by_epoch=True, begin=0, end=30, step_size=10, gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=80, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
