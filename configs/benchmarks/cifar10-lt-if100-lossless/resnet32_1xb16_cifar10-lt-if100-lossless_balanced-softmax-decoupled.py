# Decoupled Balanced Softmax (BALMS, Ren et al. 2020): the zoo classifier
# fine-tuned with the Balanced Softmax loss on the frozen backbone (the
# start, lr, batch, epochs and trained parameters of ot_reweight).
_base_ = [
    '../_base_/cifar10_lt_if100_lossless.py',
    '../_base_/stage2_decoupled.py',
]
model = dict(
    head=dict(
        num_classes=10,
        loss=dict(type='BalancedSoftmaxLoss')))
train_dataloader = dict(batch_size=16)
load_from = _base_.zoo + '/seed0_epoch200.pth'
