# Decoupled stage 2: class-weighted CE fine-tuning of the classifier only
# (class-balanced weights, effective number with beta 0.9999, normalised to
# sum to K = 10, set by DRWHook from epoch 0 from the training set's class
# counts), 40 epochs at lr 2e-5, batch 16, from the stage-1 model of
# ./resnet32_1xb128_cifar10-lt-if100_ce.py. Otherwise as
# ./resnet32_1xb16_cifar10-lt-if100_stage2-ce.py.
_base_ = ['./resnet32_1xb16_cifar10-lt-if100_stage2-ce.py']
cb_beta = 0.9999
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
default_hooks = dict(
    drw=dict(type='DRWHook', start_epoch=0, weighting='effective_num',
             beta=cb_beta))
