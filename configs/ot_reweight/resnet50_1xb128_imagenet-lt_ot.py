# OT re-weighting (Guo et al., NeurIPS 2022), ResNet-50 on ImageNet-LT with
# the paper's settings (Sec. 6.1, appendix B.1): 200 epochs of CE from scratch
# (stage 1), then 50 epochs of OT re-weighting of the last FC layer only
# (combined cost, the 1000 class prototypes of the meta set = 10 images per
# class of the balanced ImageNet-LT val list, weight vector, alpha 2e-5,
# beta 1e-2, batch 128 in one OT problem: use one GPU, or scale the batch).
# Reproduces: Table 4, "Our method": top-1 error 52.36 % (+-0.01).
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/imagenet_lt.py',
    '../_base_/schedules/imagenet_lt_two_stage.py',
    '../_base_/default_runtime.py',
    '../_base_/ot_reweight.py',
]
model = dict(
    _base_.ot_model,
    reweighter=dict(
        cost=dict(type='CombinedCost', feature_coef=1.0, label_coef=1.0),
        learner=dict(type='WeightVector', lr=1e-2, momentum=0.9),
        reg=0.1,
        max_iter=200,
        meta_mode='prototype'))
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(
    ot_reweight=dict(
        _base_.ot_hook,
        start_epoch=200,
        stage2_lr=2e-5,
        freeze_backbone=True,
        # the backbone is frozen in stage 2: the meta features never change
        meta_refresh_interval=50))
