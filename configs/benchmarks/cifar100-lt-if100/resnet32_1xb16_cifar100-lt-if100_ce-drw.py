# ce_drw: the control of ot_reweight's stage 2 (same start, lr, batch,
# epochs, trained parameters): the classifier fine-tuned with CE weighted by
# the effective number (beta 0.9999, Cui et al. 2019), normalised to sum K:
# DRWHook from epoch 0 sets them from the training set's class counts.
#   tools/train.py THIS --cfg-options load_from=ZOO/seedS_epoch200.pth \
#       randomness.seed=S custom_hooks.0.seed=S
_base_ = [
    '../_base_/cifar100_lt_if100.py',
    '../_base_/stage2_decoupled.py',
]
cb_beta = 0.9999
model = dict(
    head=dict(
        num_classes=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
# a default hook (a dict, merged), so that a run without the feature cache
# (custom_hooks=[], as the quick budget and the overhead pairs) keeps it
default_hooks = dict(
    drw=dict(type='DRWHook', start_epoch=0, weighting='effective_num',
             beta=cb_beta))
train_dataloader = dict(batch_size=16)
load_from = _base_.zoo + '/seed0_epoch200.pth'
