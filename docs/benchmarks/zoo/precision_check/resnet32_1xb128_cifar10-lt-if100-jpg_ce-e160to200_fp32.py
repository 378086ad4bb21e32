# The bf16 config next to it with these 40 epochs in float32: the pair differs
# in precision only.
_base_ = ['./resnet32_1xb128_cifar10-lt-if100-jpg_ce-e160to200_bf16.py']

work_dir = 'work_dirs/precision_check/fp32'
optim_wrapper = dict(type='OptimWrapper')
