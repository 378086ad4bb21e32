# Decoupled stage 2: class-weighted CE fine-tuning of the classifier only
# (class-balanced weights, effective number with beta 0.9999, normalised to
# sum to K = 10), 40 epochs at lr 2e-5, batch 16, from the stage-1 model of
# ./resnet32_1xb128_cifar10-lt-if100_ce.py. Otherwise as
# ./resnet32_1xb16_cifar10-lt-if100_stage2-ce.py.
_base_ = ['./resnet32_1xb16_cifar10-lt-if100_stage2-ce.py']
cb_beta = 0.9999
class_weight = [(1 - cb_beta) / (1 - cb_beta**n) for n in _base_.class_counts]
class_weight = [w / sum(class_weight) * 10 for w in class_weight]
model = dict(
    head=dict(
        loss=dict(
            type='CrossEntropyLoss', loss_weight=1.0,
            class_weight=class_weight)))
