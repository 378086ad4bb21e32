# The zoo model's predictions on the held-out meta set (10 images per class,
# never trained on): the held-out data the inductive post-hoc corrections
# are estimated on.
#   python tools/test.py THIS ZOO/seedS_epoch200.pth --out OUT/meta_S.pkl
_base_ = ['./resnet32_1xb128_cifar10-lt-if100-lossless_ce.py']
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LongTailMetaSet',
        long_tail=_base_.train_dataloader.dataset))
test_evaluator = [dict(type='Accuracy', topk=(1, ))]
