# Stage 1: 30 epochs of SGD (lr 0.1, cosine to 0 at epoch 30);
# stage 2: 15 epochs at the constant alpha set by OTReweightHook.stage2_lr.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=30, by_epoch=True, begin=0, end=30)
train_cfg = dict(by_epoch=True, max_epochs=45, val_interval=15)
val_cfg = dict()
test_cfg = dict()
