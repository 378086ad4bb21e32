# OT re-weighting on ImageNet-LT with a "reduced prototype" Q (Sec. 6.1): at
# every iteration Q is 100 prototypes drawn at random from the 1000, for
# training sets with many classes. Otherwise as
# ./resnet50_1xb128_imagenet-lt_ot.py.
# Reproduces: Table 4, "Our method+Reduced Prototype": top-1 error 52.41 %.
_base_ = ['./resnet50_1xb128_imagenet-lt_ot.py']
model = dict(
    reweighter=dict(meta_mode='stochastic_prototype', num_prototypes=100))
