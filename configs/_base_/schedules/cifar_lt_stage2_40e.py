# A decoupled stage 2 on CIFAR-LT: 40 epochs from a stage-1 checkpoint, batch
# 16, SGD (momentum 0.9, weight decay 5e-4) at the constant lr alpha = 2e-5 of
# the OT re-weighting paper's stage 2. Configs that re-learn the classifier
# from scratch (cRT) override the learning rate.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=2e-5, momentum=0.9, weight_decay=5e-4))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16)
