# OT re-weighting (Guo et al., NeurIPS 2022), ResNet-50 on iNaturalist 2018
# with the paper's settings (appendix B.2): a pre-trained backbone, 60 epochs
# of CE (stage 1, lr 0.01, x0.1 every 20 epochs; the stage-1 length is not in
# the paper), then 200 epochs of OT re-weighting of the last FC layer only
# with the feature-aware cost (the 8142-dim one-hot labels are too sparse for
# the label cost) and the 8142 class prototypes of the meta set (2 training
# images per class), weight vector, alpha 1e-4, beta 1e-3, batch 64, weight
# decay 5e-3.
# Differs from the paper: the backbone starts from torchvision's ImageNet
# weights; the paper's ImageNet + iNaturalist-2017 weights are not public in
# OpenMMLab/torchvision form (set model.backbone.init_cfg.checkpoint).
# Reproduces: Table 6, "Our method": top-1 error 30.59 %.
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/inat2018.py',
    '../_base_/schedules/inat2018_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight.py',
]
model = dict(
    _base_.ot_model,
    reweighter=dict(
        cost=dict(type='FeatureCost', metric='cosine'),
        learner=dict(type='WeightVector', lr=1e-3, momentum=0.9),
        reg=0.1,
        max_iter=200,
        meta_mode='prototype'),
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    head=dict(num_classes=8142))
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(
    ot_reweight=dict(
        _base_.ot_hook,
        start_epoch=60,
        stage2_lr=1e-4,
        freeze_backbone=True,
        # the backbone is frozen in stage 2: the meta features never change
        meta_refresh_interval=200))
