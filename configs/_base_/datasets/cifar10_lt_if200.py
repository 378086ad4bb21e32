# CIFAR-10-LT with imbalance factor 200 (see cifar10_lt.py).
_base_ = ['./cifar10_lt.py']
imbalance_factor = 200
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
