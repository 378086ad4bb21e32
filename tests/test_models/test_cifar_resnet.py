# Copyright (c) mmot contributors. All rights reserved.
import pytest
import torch
from torch import nn

import mmot  # noqa: F401  (registers CifarResNet into mmpretrain.MODELS)
from mmot.models.backbones import CifarResNet
from mmot.models.backbones.cifar_resnet import ZeroPadShortcut
from mmpretrain.registry import MODELS


def num_params(module, trainable_only=False):
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad or not trainable_only)


def expected_params(depth, shortcut='A', in_channels=3):
    """Count the CIFAR ResNet parameters from the architecture description.

    Stem conv (no bias) + BN, then per stage ``n`` blocks of two 3x3 convs
    with BN; option B adds a 1x1 conv + BN where the shape changes.
    """
    n = (depth - 2) // 6
    total = 9 * in_channels * 16 + 2 * 16
    prev = 16
    for width in (16, 32, 64):
        for j in range(n):
            cin = prev if j == 0 else width
            total += 9 * cin * width + 2 * width  # conv1 + bn1
            total += 9 * width * width + 2 * width  # conv2 + bn2
            if j == 0 and cin != width and shortcut == 'B':
                total += cin * width + 2 * width
        prev = width
    return total


@pytest.mark.parametrize('depth', [8, 20, 32, 56])
def test_param_count(depth):
    model = CifarResNet(depth=depth)
    assert num_params(model) == expected_params(depth)


def test_resnet32_is_046m():
    model = CifarResNet(depth=32)
    backbone = num_params(model)
    # He et al. (2016), Table 6: ResNet-32 has 0.46M parameters (including
    # the 10-way classifier, 64 * 10 + 10 = 650 parameters).
    assert round((backbone + 650) / 1e6, 2) == 0.46
    assert backbone == 463504
    assert num_params(CifarResNet(depth=32, shortcut='B')) == \
        expected_params(32, 'B')
    assert num_params(CifarResNet(depth=110)) == pytest.approx(1.73e6,
                                                               rel=0.01)


def test_structure():
    model = CifarResNet(depth=20)
    assert model.num_blocks == 3
    assert model.conv1.kernel_size == (3, 3)
    assert model.conv1.stride == (1, 1)
    assert not hasattr(model, 'maxpool')
    for i, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2))):
        layer = getattr(model, f'layer{i + 1}')
        assert len(layer) == 3
        assert layer[0].conv1.stride == (stride, stride)
        assert layer[0].conv1.out_channels == width
        assert all(block.conv1.stride == (1, 1) for block in layer[1:])
    assert isinstance(model.layer1[0].shortcut, nn.Identity)
    assert isinstance(model.layer2[0].shortcut, ZeroPadShortcut)
    assert isinstance(model.layer2[1].shortcut, nn.Identity)
    model_b = CifarResNet(depth=20, shortcut='B')
    assert isinstance(model_b.layer2[0].shortcut, nn.Sequential)
    assert model_b.layer2[0].shortcut[0].kernel_size == (1, 1)
    assert model.feat_dim == 64


@pytest.mark.parametrize('shortcut', ['A', 'B'])
def test_output_shapes(shortcut):
    model = CifarResNet(depth=8, shortcut=shortcut, out_indices=(0, 1, 2))
    outs = model(torch.rand(2, 3, 32, 32))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 32),
                                              (2, 32, 16, 16),
                                              (2, 64, 8, 8)]
    outs = model(torch.rand(2, 3, 8, 8))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 8), (2, 32, 4, 4),
                                              (2, 64, 2, 2)]
    # Default: the last stage only.
    outs = CifarResNet(depth=8, shortcut=shortcut)(torch.rand(1, 3, 32, 32))
    assert len(outs) == 1 and tuple(outs[0].shape) == (1, 64, 8, 8)
    outs = CifarResNet(depth=8, out_indices=-2)(torch.rand(1, 3, 8, 8))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 4, 4)]


def test_grayscale_input():
    model = CifarResNet(depth=8, in_channels=1)
    assert model.conv1.in_channels == 1
    assert num_params(model) == expected_params(8, in_channels=1)
    outs = model(torch.rand(3, 1, 8, 8))
    assert tuple(outs[-1].shape) == (3, 64, 2, 2)
    with pytest.raises(RuntimeError):
        model(torch.rand(3, 3, 8, 8))


def test_zero_pad_shortcut():
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert tuple(y.shape) == (2, 32, 4, 4)
    # Original channels are kept in the middle, subsampled spatially.
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, :8]) == 0
    assert torch.count_nonzero(y[:, 24:]) == 0
    assert list(shortcut.parameters()) == []
    with pytest.raises(ValueError, match='cannot reduce'):
        ZeroPadShortcut(32, 16, stride=1)


def test_residual_gradients_flow():
    model = CifarResNet(depth=8)
    model.init_weights()
    x = torch.rand(2, 3, 8, 8)
    model(x)[0].sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name


@pytest.mark.parametrize('depth', [0, 2, 7, 9, 21, 33, 32.0, '32', True])
def test_invalid_depth(depth):
    with pytest.raises(ValueError, match='depth'):
        CifarResNet(depth=depth)


def test_invalid_arguments():
    with pytest.raises(ValueError, match='shortcut'):
        CifarResNet(depth=20, shortcut='C')
    with pytest.raises(ValueError, match='out_indices'):
        CifarResNet(depth=20, out_indices=(3, ))
    with pytest.raises(ValueError, match='out_indices'):
        CifarResNet(depth=20, out_indices=())
    with pytest.raises(ValueError, match='frozen_stages'):
        CifarResNet(depth=20, frozen_stages=4)
    with pytest.raises(ValueError, match='in_channels'):
        CifarResNet(depth=20, in_channels=0)


def test_init_weights_kaiming_fan_in():
    torch.manual_seed(0)
    model = CifarResNet(depth=56)
    model.init_weights()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([m.weight.flatten() for m in convs[1:]])
    fan_in = torch.tensor([m.weight[0].numel() for m in convs[1:]],
                          dtype=torch.float)
    # Kaiming-normal fan-in: std = sqrt(2 / fan_in) per layer.
    stds = torch.tensor([m.weight.std().item() for m in convs[1:]])
    torch.testing.assert_close(
        stds, (2.0 / fan_in).sqrt(), rtol=0.15, atol=0.0)
    assert weights.abs().max() > 0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_frozen_stages():
    model = CifarResNet(depth=8, frozen_stages=1)
    model.train()
    for module in (model.conv1, model.norm1, model.layer1):
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in (model.layer2, model.layer3):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    stem_only = CifarResNet(depth=8, frozen_stages=0)
    stem_only.train()
    assert not stem_only.conv1.weight.requires_grad
    assert stem_only.layer1[0].conv1.weight.requires_grad
    assert num_params(CifarResNet(depth=8, frozen_stages=3),
                      trainable_only=True) == 0


def test_norm_eval_keeps_running_stats():
    model = CifarResNet(depth=8, norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    before = [bn.running_mean.clone() for bn in bns]
    model(torch.rand(4, 3, 8, 8) * 5 + 3)
    for bn, mean in zip(bns, before):
        torch.testing.assert_close(bn.running_mean, mean)
    # Without norm_eval the statistics are updated in training mode.
    model = CifarResNet(depth=8)
    model.train()
    model(torch.rand(4, 3, 8, 8) * 5 + 3)
    assert model.norm1.running_mean.abs().sum() > 0


def test_build_from_registry():
    model = MODELS.build(dict(type='CifarResNet', depth=32))
    assert isinstance(model, CifarResNet)
    assert model.depth == 32 and model.num_blocks == 5
    classifier = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=8, in_channels=1),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    logits = classifier(torch.rand(2, 1, 8, 8), mode='tensor')
    assert tuple(logits.shape) == (2, 10)
