# Copyright (c) mmot contributors. All rights reserved.
"""The CIFAR ResNet of He et al. (2016), Section 4.2."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

SHORTCUT_TYPES = ('A', 'B')


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut ("option A" of He et al. 2016).

    The input is subsampled spatially with ``stride`` and the missing output
    channels are filled with zeros, split evenly before and after the
    existing channels (as in the LDAM-DRW CIFAR code).

    Args:
        in_channels (int): Channels of the input.
        out_channels (int): Channels of the output; must not be smaller than
            ``in_channels``.
        stride (int): Spatial subsampling factor.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                'The zero-padding shortcut (shortcut="A") cannot reduce '
                f'channels, got in_channels={in_channels} and '
                f'out_channels={out_channels}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        pad = out_channels - in_channels
        self.pad_front = pad // 2
        self.pad_back = pad - self.pad_front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad_front or self.pad_back:
            # F.pad pads the last dims first: (W, W, H, H, C, C).
            x = F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))
        return x

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'out_channels={self.out_channels}, stride={self.stride}')


class CifarBasicBlock(BaseModule):
    """Two 3x3 convolutions with a residual connection.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first convolution. Defaults to 1.
        shortcut (str): ``'A'`` for the parameter-free zero-padding shortcut
            or ``'B'`` for a strided 1x1 convolution followed by a norm layer.
            It is only used when the shape changes; otherwise the shortcut is
            the identity. Defaults to ``'A'``.
        conv_cfg (dict, optional): Config of the convolution layers.
            Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Config of the norm layers.
            Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 shortcut: str = 'A',
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

        self.conv1 = build_conv_layer(
            conv_cfg,
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            padding=1,
            bias=False)
        self.norm1_name, norm1 = build_norm_layer(
            norm_cfg, out_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(
            conv_cfg,
            out_channels,
            out_channels,
            kernel_size=3,
            stride=1,
            padding=1,
            bias=False)
        self.norm2_name, norm2 = build_norm_layer(
            norm_cfg, out_channels, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.relu = nn.ReLU(inplace=True)

        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == 'A':
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        elif shortcut == 'B':
            self.shortcut = nn.Sequential(
                build_conv_layer(
                    conv_cfg,
                    in_channels,
                    out_channels,
                    kernel_size=1,
                    stride=stride,
                    bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        else:
            raise ValueError(f'`shortcut` must be one of {SHORTCUT_TYPES}, '
                             f'got {shortcut!r}.')

    @property
    def norm1(self) -> nn.Module:
        """nn.Module: The norm layer after the first convolution."""
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        """nn.Module: The norm layer after the second convolution."""
        return getattr(self, self.norm2_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


@MODELS.register_module()
class CifarResNet(BaseBackbone):
    """ResNet for 32x32 images (He et al., CVPR 2016, Section 4.2).

    The network has ``6n + 2`` layers: a 3x3 stem convolution, three stages
    of ``n`` basic blocks with ``base_channels * (1, 2, 4)`` channels
    (16/32/64 by default) and strides 1/2/2, and the final classifier (not
    part of the backbone). Common depths are 20, 32, 44, 56 and 110;
    ResNet-32 with the zero-padding shortcut is the backbone used by
    LDAM-DRW, MetaSAug and the optimal-transport re-weighting paper on
    CIFAR-LT. There is no max-pooling; the classifier input is obtained with
    a global average pooling neck in the config.

    Args:
        depth (int): Network depth; ``depth - 2`` must be a positive multiple
            of 6 (e.g. 8, 20, 32, 44, 56, 110).
        in_channels (int): Channels of the input images (1 for grayscale).
            Defaults to 3.
        base_channels (int): Channels of the stem and of the first stage.
            Defaults to 16.
        shortcut (str): Shortcut used when a block changes the feature shape.
            ``'A'``: parameter-free subsampling and zero-padding of channels
            (the option of the LDAM-DRW code); ``'B'``: strided 1x1
            convolution followed by a norm layer. Defaults to ``'A'``.
        out_indices (Sequence[int] | int): Output from which stages (0, 1 or
            2; negative indices count from the end). Defaults to ``(2, )``.
        frozen_stages (int): Stages to freeze (parameters without gradients
            and norm layers in eval mode). 0 freezes the stem, ``i > 0`` the
            stem and the first ``i`` stages, -1 nothing. Defaults to -1.
        conv_cfg (dict, optional): Config of the convolution layers.
            Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Config of the norm layers.
            Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Whether to keep the norm layers in eval mode (frozen
            running statistics) during training. Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Kaiming-normal (fan-in) convolutions and unit-weight
            norm layers, as in the LDAM-DRW code.

    Example:
        >>> import torch
        >>> from mmot.models.backbones import CifarResNet
        >>> model = CifarResNet(depth=32, out_indices=(0, 1, 2))
        >>> outs = model(torch.rand(2, 3, 32, 32))
        >>> [tuple(o.shape) for o in outs]
        [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)]
    """

    num_stages = 3
    strides = (1, 2, 2)

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 base_channels: int = 16,
                 shortcut: str = 'A',
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(
                         type='Kaiming',
                         layer=['Conv2d'],
                         mode='fan_in',
                         nonlinearity='relu'),
                     dict(
                         type='Constant',
                         val=1,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg=init_cfg)
        if (isinstance(depth, bool) or not isinstance(depth, int)
                or depth < 8 or (depth - 2) % 6 != 0):
            raise ValueError(
                '`depth` of CifarResNet must be an integer 6n+2 with n >= 1 '
                f'(e.g. 20, 32, 44, 56, 110), got {depth!r}.')
        if shortcut not in SHORTCUT_TYPES:
            raise ValueError(f'`shortcut` must be one of {SHORTCUT_TYPES}, '
                             f'got {shortcut!r}.')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError('`in_channels` must be a positive integer, got '
                             f'{in_channels!r}.')
        if not isinstance(base_channels, int) or base_channels < 1:
            raise ValueError('`base_channels` must be a positive integer, '
                             f'got {base_channels!r}.')
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or len(out_indices) == 0:
            raise ValueError('`out_indices` must be an int or a non-empty '
                             f'sequence of ints, got {out_indices!r}.')
        normalized = []
        for index in out_indices:
            if not isinstance(index, int) or not (-self.num_stages <= index <
                                                  self.num_stages):
                raise ValueError(
                    f'`out_indices` entries must be integers in '
                    f'[{-self.num_stages}, {self.num_stages - 1}], got '
                    f'{out_indices!r}.')
            normalized.append(index % self.num_stages)
        if not isinstance(frozen_stages, int) or not (
                -1 <= frozen_stages <= self.num_stages):
            raise ValueError(
                f'`frozen_stages` must be an integer in '
                f'[-1, {self.num_stages}], got {frozen_stages!r}.')

        self.depth = depth
        self.num_blocks = (depth - 2) // 6
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.shortcut = shortcut
        self.out_indices = tuple(sorted(set(normalized)))
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.conv1 = build_conv_layer(
            conv_cfg,
            in_channels,
            base_channels,
            kernel_size=3,
            stride=1,
            padding=1,
            bias=False)
        self.norm1_name, norm1 = build_norm_layer(
            norm_cfg, base_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)

        self.res_layers = []
        stage_in = base_channels
        for i, stride in enumerate(self.strides):
            stage_out = base_channels * 2**i
            blocks = []
            for j in range(self.num_blocks):
                blocks.append(
                    CifarBasicBlock(
                        stage_in if j == 0 else stage_out,
                        stage_out,
                        stride=stride if j == 0 else 1,
                        shortcut=shortcut,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg))
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, nn.Sequential(*blocks))
            self.res_layers.append(layer_name)
            stage_in = stage_out
        self.feat_dim = stage_in

        self._freeze_stages()

    @property
    def norm1(self) -> nn.Module:
        """nn.Module: The norm layer of the stem."""
        return getattr(self, self.norm1_name)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for module in (self.conv1, self.norm1):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            layer = getattr(self, f'layer{i}')
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple:
        """Forward computation.

        Args:
            x (torch.Tensor): Images of shape ``(N, in_channels, H, W)``.

        Returns:
            tuple[torch.Tensor]: The feature maps of the stages listed in
            ``out_indices``.
        """
        x = self.relu(self.norm1(self.conv1(x)))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True):
        """Set train/eval mode, keeping frozen stages and norms in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
