# OT re-weighting (Guo et al., NeurIPS 2022) for any mmpretrain classifier
# config, whatever its head. This fragment only defines three values (a base
# may not define a key its sibling bases define, and mmengine lists replace
# rather than merge, so it sets no model, hook list or scheduler list of
# yours); your config applies them, e.g. on mmpretrain's MobileNet-V3:
#
#   _base_ = ['mmpretrain::mobilenet_v3/mobilenet-v3-small_8xb16_cifar10.py',
#             'mmot::_base_/ot_reweight.py']
#   custom_imports = dict(imports=['mmot'], allow_failed_imports=False)
#   model = _base_.ot_model            # keeps your backbone, neck and head
#   optim_wrapper = _base_.ot_optim_wrapper   # skips non-finite updates
#   default_hooks = dict(ot_reweight=dict(_base_.ot_hook, start_epoch=160))
#   train_dataloader = dict(dataset=dict(
#       _delete_=True, type='LongTailDataset', imbalance_factor=100,
#       dataset=_base_.train_dataloader.dataset))
#
# Stage 1 (epochs < start_epoch) is your config's own training, schedulers
# and hooks (default_hooks is a dict: it merges, your custom_hooks stay).
# Stage 2 learns per-example weights by OT against the held-out balanced
# meta set. The paper's defaults: combined cost (1 - cosine + 0/1 label),
# prototype meta set, weight vector kept across epochs (beta 1e-3, momentum
# 0.9), lambda = 0.1, <= 200 Sinkhorn iterations. stage2_lr (the paper's
# alpha) appends a TwoStageLR to your schedulers and ends them at t1.
ot_model = dict(
    type='OTImageClassifier',
    reweighter=dict(
        cost=dict(type='CombinedCost', feature_coef=1.0, label_coef=1.0,
                  label_mode='01', metric='cosine'),
        learner=dict(type='WeightVector', lr=1e-3, momentum=0.9,
                     init='uniform', parametrization='normalize'),
        reg=0.1,
        max_iter=200,
        meta_mode='prototype'))
ot_hook = dict(
    type='OTReweightHook',
    start_epoch=None,  # t1: set it (or start_iter) in your config
    stage2_lr=None,
    freeze_backbone=False)
ot_optim_wrapper = dict(type='SkipNonFiniteOptimWrapper')
