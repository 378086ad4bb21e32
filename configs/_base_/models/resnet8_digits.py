# A small CNN for 8x8 one-channel digits: the 6n+2 CIFAR ResNet with n=1.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=8, in_channels=1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='OTLinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ))
