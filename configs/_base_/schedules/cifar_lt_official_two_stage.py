# The CIFAR-LT schedule of the authors' code (OT_train.py): their stage 2 is
# the loop `range(160, 250)` from a stage-1 checkpoint, which we take to be
# the epoch-160 one of the 200-epoch recipe (before its lr decays; the
# benchmarks start from the zoo's seed*_epoch160.pth). So stage 1 runs
# epochs 0-159 of cifar_lt_two_stage.py (lr 0.1 after the warm-up; the
# decays at 160 and 180 are never reached: OTReweightHook ends the stage-1
# schedulers at its start_epoch=160), stage 2 epochs 160-249: 250 epochs.
_base_ = ['./cifar_lt_two_stage.py']
train_cfg = dict(max_epochs=250)
