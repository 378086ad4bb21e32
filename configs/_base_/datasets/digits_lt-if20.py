# Long-tailed 8x8 digits (scikit-learn, offline): 60 test images per class
# (balanced), 10 per class held out as the OT meta set, the rest cut to an
# exponential profile with imbalance factor 20 (108 -> 5 per class).
dataset_type = 'DigitsDataset'
data_preprocessor = dict(
    num_classes=10, mean=[64.0], std=[90.0], to_rgb=False)

# +-1 pixel shifts, so the small training set is not memorised at once
train_pipeline = [
    dict(type='RandomCrop', crop_size=8, padding=1),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
        imbalance_factor=20,
        meta_per_class=10,
        meta_pipeline=test_pipeline,
        seed=0),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# The test split is balanced, so top-1 accuracy is balanced accuracy.
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
