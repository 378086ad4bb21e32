# Table 2, "Label + Prototype" (paper: top-1 error 55.06): the 0/1 label
# cost alone, so the weights the OT loss asks for are class-level.
_base_ = ['./resnet32_1xb16_cifar100-lt-if200_ot-combined-prototype.py']
model = dict(
    reweighter=dict(cost=dict(_delete_=True, type='LabelCost', mode='01')))
