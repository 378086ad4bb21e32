# OT re-weighting (Guo et al., NeurIPS 2022), ResNet-152 on Places-LT with
# the paper's settings (Sec. 6.1): backbone pre-trained on ImageNet
# (torchvision weights), 30 epochs of CE fine-tuning (stage 1, lr 0.01, x0.1
# every 10 epochs; the stage-1 length is not in the paper), then 50 epochs of
# OT re-weighting of the last FC layer only (combined cost, the 365 class
# prototypes of the meta set = 10 images per class of the balanced
# Places-LT val list, weight vector, alpha 1e-4, beta 1e-3, batch 32, weight
# decay 5e-3).
# Reproduces: Table 3, "Our method": top-1 error 60.32 % (+-0.02).
_base_ = [
    '../_base_/models/resnet152.py',
    '../_base_/datasets/places_lt.py',
    '../_base_/schedules/places_lt_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight.py',
]
model = dict(
    _base_.ot_model,
    reweighter=dict(
        cost=dict(type='CombinedCost', feature_coef=1.0, label_coef=1.0),
        learner=dict(type='WeightVector', lr=1e-3, momentum=0.9),
        reg=0.1,
        max_iter=200,
        meta_mode='prototype'),
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet152')),
    head=dict(num_classes=365))
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(
    ot_reweight=dict(
        _base_.ot_hook,
        start_epoch=30,
        stage2_lr=1e-4,
        freeze_backbone=True,
        # the backbone is frozen in stage 2: the meta features never change
        meta_refresh_interval=50))
