# Decoupled stage 2 (control): CE fine-tuning of the classifier only, 40
# epochs at the OT re-weighting paper's stage-2 lr alpha = 2e-5, batch 16,
# from the stage-1 model of ./resnet32_1xb128_cifar10-lt-if100_ce.py
# (load_from). Same start and schedule as
# ../ot_reweight/resnet32_1xb16_cifar10-lt-if100_ot-stage2.py, so the
# difference is the OT weights alone.
# The backbone is frozen with mmpretrain/mmot's own mechanism,
# `backbone.frozen_stages` (stem + all 3 stages: no gradients, BN in eval
# mode); the pooling neck has no parameters, so only the head trains.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt.py',
    '../_base_/schedules/cifar_lt_stage2_40e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(frozen_stages=3), head=dict(type='LinearClsHead'))
load_from = 'work_dirs/resnet32_1xb128_cifar10-lt-if100_ce/epoch_200.pth'
