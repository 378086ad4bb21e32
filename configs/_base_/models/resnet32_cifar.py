# ResNet-32 for 32x32 images (He et al. 2016; the 6n+2 CIFAR ResNet with the
# zero-padding shortcut used by LDAM-DRW, MetaSAug and the OT re-weighting
# paper), global average pooling and a linear classifier that applies the
# OT batch weights in stage 2 (OTLinearClsHead = LinearClsHead until
# OTReweightHook switches it on). Set head.num_classes=100 for CIFAR-100.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=32),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='OTLinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ))
