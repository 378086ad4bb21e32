# The OT re-weighting fragment (../_base_/ot_reweight.py) on an *unmodified*
# mmpretrain config: mmpretrain's ResNet-18 CIFAR-10 recipe (200 epochs, lr
# 0.1 x0.1 at 100 and 150, batch 8 x 16), with its training set made
# long-tailed (IF=100) and the last 40 epochs re-weighted by OT.
# Only these things are added to the mmpretrain config:
#   1. import mmot (its modules register into mmpretrain's registries);
#   2. the model becomes OTImageClassifier (the config's backbone, neck and
#      head are kept; it applies the OT batch weights in stage 2);
#   3. the optim wrapper skips non-finite updates;
#   4. OTReweightHook with the switch epoch t1 (other settings: the
#      fragment's defaults = the paper's), in default_hooks (a dict, so it
#      merges: the config's own custom_hooks stay);
#   5. the training dataset is wrapped in LongTailDataset (the long-tail cut
#      and the held-out balanced meta set).
# The mmpretrain config is found through the `mmpretrain::` scope, so this
# needs mmpretrain installed with pip (it ships its configs in .mim).
_base_ = [
    'mmpretrain::resnet/resnet18_8xb16_cifar10.py',
    '../_base_/ot_reweight.py',
]
custom_imports = dict(imports=['mmot'], allow_failed_imports=False)
model = _base_.ot_model
optim_wrapper = _base_.ot_optim_wrapper
default_hooks = dict(ot_reweight=dict(_base_.ot_hook, start_epoch=160))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        dataset=_base_.train_dataloader.dataset,
        imbalance_factor=100,
        meta_per_class=10,
        meta_pipeline=_base_.test_pipeline))
