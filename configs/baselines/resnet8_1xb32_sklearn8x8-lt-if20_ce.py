# Offline baseline: plain cross-entropy on the long-tailed 8x8 digits
# (scikit-learn; IF=20, 10 meta images per class held out) with the small
# ResNet-8 of the demo ../ot_reweight/resnet8_1xb32_digits-lt-if20_ot.py:
# its 30 stage-1 epochs (lr 0.1, cosine to 0), no stage 2. Runs in well
# under a minute on a CPU.
_base_ = [
    '../_base_/models/resnet8_digits.py',
    '../_base_/datasets/digits_lt-if20.py',
    '../_base_/schedules/digits_two_stage.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(type='LinearClsHead'))
train_cfg = dict(max_epochs=30, val_interval=10)
# LongTailMetric's training class counts (108 -> 5 per class) are read from
# the LongTailDataset by ClassCountsHook (default_runtime.py)
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='LongTailMetric'),
]
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
