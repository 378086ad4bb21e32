# OT re-weighting with the paper's CIFAR-LT settings (Sec. 6.1): stage 2 from
# epoch 200 (after the 200 stage-1 epochs of schedules/cifar_lt_two_stage.py)
# for 40 epochs; combined cost (1 - cosine of the features + 0/1 label
# distance), the 10 class prototypes of the meta set as Q, lambda = 0.1,
# <= 200 Sinkhorn iterations; a weight vector over the training set learnt
# with beta = 1e-3; the whole network trained at alpha = 2e-5.
_base_ = ['./ot_reweight.py']
custom_hooks = [
    dict(
        type='OTReweightHook',
        start_epoch=200,
        cost=dict(
            type='CombinedCost',
            feature_coef=1.0,
            label_coef=1.0,
            label_mode='01',
            metric='cosine'),
        learner=dict(
            type='WeightVector',
            lr=1e-3,
            momentum=0.9,
            init='uniform',
            parametrization='normalize'),
        reg=0.1,
        max_iter=200,
        meta_mode='prototype',
        prototype_source='feature',
        meta_loss_weight=0.0,
        stage2_lr=2e-5,
        freeze_backbone=False),
]
