# Stage 1's predictions on the held-out meta set (the inductive post-hoc
# rows' held-out data).
_base_ = ['./resnet8_1xb32_sklearn8x8-lt-if20_ce.py']
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LongTailMetaSet',
        long_tail=_base_.train_dataloader.dataset))
test_evaluator = [dict(type='Accuracy', topk=(1, ))]
