# OT re-weighting (Guo et al., NeurIPS 2022) as a fragment for any mmpretrain
# classifier config with a linear head:
#
#   _base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py',
#             'mmot::_base_/ot_reweight.py']
#   custom_imports = dict(imports=['mmot'], allow_failed_imports=False)
#   model = dict(head=dict(type='OTLinearClsHead'))  # reads the weights
#   train_dataloader = dict(dataset=dict(
#       _delete_=True, type='LongTailDataset', imbalance_factor=100,
#       dataset=dict(type='CIFAR10', data_root='data/cifar10', split='train',
#                    pipeline={{_base_.train_pipeline}})))
#   custom_hooks = [dict(type='OTReweightHook', start_epoch=160)]
#   # (or --cfg-options custom_hooks.0.start_epoch=160)
#
# Stage 1 (epochs < start_epoch) is the config's own training; stage 2 learns
# per-example weights by OT against the held-out balanced meta set.
# The paper's defaults: combined cost (1 - cosine + 0/1 label), prototype
# meta set, weight vector kept across epochs, lambda = 0.1, <= 200 Sinkhorn
# iterations.
custom_hooks = [dict(
    type='OTReweightHook',
    start_epoch=None,  # t1: set it (or start_iter) in your config
    cost=dict(type='CombinedCost', feature_coef=1.0, label_coef=1.0,
              label_mode='01', metric='cosine'),
    learner=dict(type='WeightVector', lr=1e-3, momentum=0.9,
                 init='uniform', parametrization='normalize'),
    reg=0.1,
    max_iter=200,
    meta_mode='prototype',
    meta_loss_weight=0.0,
    stage2_lr=None,
    freeze_backbone=False,
)]
