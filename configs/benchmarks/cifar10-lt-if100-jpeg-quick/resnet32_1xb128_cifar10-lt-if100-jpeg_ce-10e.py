# The quick budget's stage 1 (the defaults of the earlier tools/benchmark.py,
# docs/benchmarks/cifar10-lt-if100): the zoo's CE run on the JPEG CIFAR-10
# (../shared/data/cifar10-jpg.tar.gz; `ln -s DIR/cifar10-jpg data/`)
# shortened to 10 epochs, lr 0.1 with a 1-epoch linear warm-up from x0.2,
# then cosine to 0; no epochs kept beside the last two checkpoints.
#   python tools/train.py THIS --work-dir OUT/runs/S/ce \
#       --cfg-options randomness.seed=S
_base_ = ['../cifar10-lt-if100-lossless/resnet32_1xb128_cifar10-lt-if100-lossless_ce.py']
data_root = 'data/cifar10-jpg'
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
test_dataloader = dict(dataset=dict(data_root=data_root))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=9, by_epoch=True, begin=1, end=10,
         eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=10, val_interval=11)
custom_hooks = []
