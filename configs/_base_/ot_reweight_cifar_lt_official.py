# OT re-weighting as the authors' code (OT_train.py of
# DandanGuo1993/reweight-imbalance-classification-with-OT) computes its
# stage 2 - a different method from the paper's text (ot_reweight_cifar_lt.py).
# Point by point (README, "Paper text vs. the authors' code"):
# 1. loss = sum_i CE_i * w_i with the RAW weights after the OT step
#    (learner AuthorsWeightVector), w initialised to the class-balanced
#    effective-number weights (beta 0.9999, sum K over classes);
#    softmax(w_B) is only the OT measure P(w);
# 2. the weight step is a fresh SGD per batch: w_B -= 0.01 * (g + 5e-4 w_B)
#    on the batch entries only (AuthorsWeightVector's step; their momentum
#    0.9 never acts on a fresh optimiser);
# (1-4: model AuthorsOTImageClassifier and its learner)
# 3. + 10 x mean CE of the 100 meta images, drawn once per epoch with the
#    training augmentation and forwarded through the network in train mode
#    every iteration (meta_loader.pipeline='train', meta_loss_source='images');
# 4. backbone parameters frozen but BatchNorm left in train mode
#    (freeze_mode='train'); per iteration an eval-mode forward of the batch
#    for the OT features (ot_features='eval_forward'), then the
#    train-mode forwards of the batch and of the meta images; prototypes =
#    features of the per-class mean of that epoch's augmented meta images,
#    forwarded in train mode at the epoch start (prototype_source='image',
#    meta_forward_mode='train');
# 5. the classifier's optimiser: SGD lr 2e-5, momentum 0.9, Nesterov, weight
#    decay 5e-4, constant, fresh at the stage switch (stage2_sgd);
# 6. their Sinkhorn: log domain from 0, stop when sum |dg| < 0.1, unrolled
#    gradient, cost 0.5 (1 - cos) + 0.5 mean((onehot_q - onehot_b)^2) in
#    float64 (solver='authors');
# 7. data: RandomCrop with reflect padding, their normalisation, meta set =
#    first 10 per class after a numpy shuffle (seed 6), long-tail cut by
#    python's random (seed 42) (LongTailDataset split='authors').
# Use it with schedules/cifar_lt_official_two_stage.py (stage 2 from epoch 160
# for 90 epochs, as the benchmarks' ot_reweight_official rows).
# A config using it applies the values (mmengine refuses a key that two
# bases define, so the fragment defines none of yours):
#   model = _base_.ot_model
#   optim_wrapper = _base_.ot_optim_wrapper
#   default_hooks = dict(ot_reweight=_base_.ot_hook)
#   data_preprocessor = _base_.authors_data_preprocessor
#   train_dataloader = dict(dataset=_base_.authors_train_dataset)
_base_ = ['./ot_reweight.py']
authors_data_preprocessor = dict(
    num_classes=10, mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7],
    to_rgb=False)
authors_train_dataset = dict(
    split='authors',
    seed=6,
    cut_seed=42,
    dataset=dict(pipeline=[
        # mmpretrain's RandomCrop would pad with zeros whatever
        # padding_mode says (mmpretrain 1.2); this one reflects
        dict(type='PadModeRandomCrop', crop_size=32, padding=4,
             padding_mode='reflect'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]))
ot_model = dict(
    type='AuthorsOTImageClassifier',
    ot_features='eval_forward',
    reweighter=dict(
        cost=dict(
            _delete_=True,
            type='CombinedCost',
            feature_coef=0.5,
            label_coef=0.5,
            label_mode='mse',
            metric='cosine'),
        learner=dict(
            _delete_=True,
            type='AuthorsWeightVector',
            lr=1e-2,
            weight_decay=5e-4,
            init='effective_number'),
        reg=0.1,
        max_iter=200,
        solver='authors',
        authors_thresh=0.1,
        meta_mode='prototype'),
    prototype_source='image',
    meta_forward_mode='train',
    meta_loss_source='images',
    meta_loss_weight=10.0)
ot_hook = dict(
    start_epoch=160,  # their range(160, 250): schedules/cifar_lt_official_two_stage.py
    stage2_lr=2e-5,
    stage2_sgd=dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
    freeze_backbone=True,
    freeze_mode='train',
    meta_loader=dict(pipeline='train'))
