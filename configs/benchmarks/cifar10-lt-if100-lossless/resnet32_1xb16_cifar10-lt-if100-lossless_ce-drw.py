# ce_drw: the control of ot_reweight's stage 2 (same start, lr, batch,
# epochs, trained parameters): the classifier fine-tuned with CE weighted by
# the effective number (beta 0.9999, Cui et al. 2019), normalised to sum K.
#   tools/train.py THIS --cfg-options load_from=ZOO/seedS_epoch200.pth \
#       randomness.seed=S custom_hooks.0.seed=S
_base_ = [
    '../_base_/cifar10_lt_if100_lossless.py',
    '../_base_/stage2_decoupled.py',
]
cb_beta = 0.9999
cb_weight = [(1 - cb_beta) / (1 - cb_beta**n) for n in _base_.class_counts]
model = dict(
    head=dict(
        num_classes=10,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0,
                  class_weight=[w / sum(cb_weight) * 10 for w in cb_weight])))
train_dataloader = dict(batch_size=16)
load_from = _base_.zoo + '/seed0_epoch200.pth'
