# CIFAR-10-LT with imbalance factor 50 (see cifar10_lt.py).
_base_ = ['./cifar10_lt.py']
imbalance_factor = 50
train_dataloader = dict(dataset=dict(imbalance_factor=imbalance_factor))
