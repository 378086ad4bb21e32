# The OT re-weighting fragment (../_base_/ot_reweight.py) on an *unmodified*
# mmpretrain config: mmpretrain's ResNet-18 CIFAR-10 recipe (200 epochs, lr
# 0.1 x0.1 at 100 and 150, batch 8 x 16), with its training set made
# long-tailed (IF=100) and the last 40 epochs re-weighted by OT.
# Only four things are added to the mmpretrain config:
#   1. import mmot (its modules register into mmpretrain's registries);
#   2. the head becomes OTLinearClsHead (reads the OT batch weights);
#   3. the training dataset is wrapped in LongTailDataset (the long-tail cut
#      and the held-out balanced meta set);
#   4. OTReweightHook with the switch epoch t1 (other settings: the
#      fragment's defaults = the paper's).
# The mmpretrain config is found through the `mmpretrain::` scope, so this
# needs mmpretrain installed with pip (it ships its configs in .mim).
_base_ = [
    'mmpretrain::resnet/resnet18_8xb16_cifar10.py',
    '../_base_/ot_reweight.py',
]
custom_imports = dict(imports=['mmot'], allow_failed_imports=False)
model = dict(head=dict(type='OTLinearClsHead'))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        dataset=_base_.train_dataloader.dataset,
        imbalance_factor=100,
        meta_per_class=10,
        meta_pipeline=_base_.test_pipeline))
custom_hooks = [dict(_base_.custom_hooks[0], start_epoch=160)]
