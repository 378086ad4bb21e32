# CIFAR-10-LT with imbalance factor 200 (see cifar10_lt.py).
_base_ = ['./cifar10_lt.py']
imbalance_factor = 200
class_counts = [int(4990 * imbalance_factor**(-i / 9)) for i in range(10)]
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='LongTailMetric', class_counts=class_counts),
]
test_evaluator = val_evaluator
