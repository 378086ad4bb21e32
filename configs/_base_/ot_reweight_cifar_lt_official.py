# OT re-weighting as the authors' code (OT_train.py) does it, where it differs
# from the paper's text (compare ot_reweight_cifar_lt.py):
# - the weights are softmax scores initialised with the class-balanced
#   (effective number, beta 0.9999) weights, beta = 1e-2 with weight decay
#   5e-4 (their per-iteration optimiser has momentum 0.9 but is re-created
#   every iteration, so its momentum never acts; ours keeps it);
# - the cost is 0.5 * (1 - cosine) + 0.5 * mean squared one-hot difference;
# - the prototypes are the features of the per-class mean meta *image*;
# - the loss adds 10 x the cross-entropy of the meta set;
# - only the last FC layer is trained in stage 2 (alpha = 2e-5).
# Use it with schedules/cifar_lt_official_two_stage.py (90 stage-2 epochs).
# Not reproduced: their stage-2 SGD uses Nesterov momentum.
_base_ = ['./ot_reweight.py']
custom_hooks = [
    dict(
        type='OTReweightHook',
        start_epoch=200,
        cost=dict(
            type='CombinedCost',
            feature_coef=0.5,
            label_coef=0.5,
            label_mode='mse',
            metric='cosine'),
        learner=dict(
            type='WeightVector',
            lr=1e-2,
            momentum=0.9,
            weight_decay=5e-4,
            init='effective_number',
            parametrization='softmax'),
        reg=0.1,
        max_iter=200,
        meta_mode='prototype',
        prototype_source='image',
        meta_loss_weight=10.0,
        stage2_lr=2e-5,
        freeze_backbone=True),
]
