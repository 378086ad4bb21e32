# Stage 1: 40 epochs of SGD (lr 0.1, cosine to 0 at epoch 40);
# stage 2: 20 epochs at the constant alpha set by OTReweightHook.stage2_lr.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=40, by_epoch=True, begin=0, end=40)
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=20)
val_cfg = dict()
test_cfg = dict()
