# Decoupled Balanced Softmax (BALMS, Ren et al. NeurIPS 2020, the
# "decoupled" row): the classifier re-trained with the Balanced Softmax loss
# on the frozen stage-1 representation. Here it is fine-tuned from the
# stage-1 classifier, on the same footing as ce_drw and ot_reweight's
# stage 2 (same start, lr, batch, epochs and trained parameters).
_base_ = ['./resnet32_1xb16_cifar10-lt-if100_stage2-ce.py']
model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='BalancedSoftmaxLoss',
            loss_weight=1.0)))
