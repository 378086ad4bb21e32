# The runner's smoke benchmark (offline, a minute on a CPU): stage 1 of the
# digits demo alone, 30 epochs of CE (../../ot_reweight/
# resnet8_1xb32_sklearn8x8-lt-if20_ot.py's), tested once at the end.
_base_ = [
    '../../_base_/models/resnet8_digits.py',
    '../../_base_/datasets/digits_lt-if20.py',
    '../../_base_/schedules/digits_two_stage.py',
    '../../_base_/default_runtime.py',
]
model = dict(head=dict(type='LinearClsHead'))
train_cfg = dict(max_epochs=30, val_interval=31)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_evaluator = [dict(type='LongTailMetric', per_class=True)]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=30))
randomness = dict(seed=0, deterministic=False)
