# CIFAR-100-LT with imbalance factor 200 (see cifar100_lt.py).
_base_ = ['./cifar100_lt.py']
imbalance_factor = 200
class_counts = [int(490 * imbalance_factor**(-i / 99)) for i in range(100)]
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='LongTailMetric', class_counts=class_counts),
]
test_evaluator = val_evaluator
