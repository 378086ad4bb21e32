# The CIFAR-LT schedule of the authors' code (OT_train.py): stage 1 as in
# cifar_lt_two_stage.py, stage 2 runs for 90 epochs (their loop
# `range(160, 250)` from a pre-trained checkpoint), so 200 + 90 epochs.
_base_ = ['./cifar_lt_two_stage.py']
train_cfg = dict(max_epochs=290)
