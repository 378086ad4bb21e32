# OT re-weighting with the paper's CIFAR-LT settings (Sec. 6.1): stage 2 from
# epoch 200 (after the 200 stage-1 epochs of schedules/cifar_lt_two_stage.py)
# for 40 epochs; combined cost (1 - cosine of the features + 0/1 label
# distance), the class prototypes of the meta set as Q, lambda = 0.1,
# <= 200 Sinkhorn iterations; a weight vector over the training set learnt
# with beta = 1e-3; the whole network trained at alpha = 2e-5.
# A config using it applies the values (see ./ot_reweight.py):
#   model = _base_.ot_model
#   optim_wrapper = _base_.ot_optim_wrapper
#   default_hooks = dict(ot_reweight=_base_.ot_hook)
_base_ = ['./ot_reweight.py']
ot_hook = dict(start_epoch=200, stage2_lr=2e-5, freeze_backbone=False)
