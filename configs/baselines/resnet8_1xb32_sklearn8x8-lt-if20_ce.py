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
# Training images per class, as LongTailDataset computes them: the digits
# classes have 178, 182, 177, 183, 181, 182, 181, 179, 174, 180 images; 60
# per class are the test split and 10 the meta set; the rest (n_max = 113)
# is cut to 113 * IF^(-i / 9).
imbalance_factor = _base_.train_dataloader.dataset.imbalance_factor
digits_rest = [108, 112, 107, 113, 111, 112, 111, 109, 104, 110]
class_counts = [
    min(int(113 * imbalance_factor**(-i / 9)), n)
    for i, n in enumerate(digits_rest)
]
model = dict(head=dict(type='LinearClsHead'))
train_cfg = dict(max_epochs=30, val_interval=10)
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='LongTailMetric', class_counts=class_counts),
]
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
