# Copyright (c) mmot contributors. All rights reserved.
from .cifar_resnet import CifarResNet

__all__ = ['CifarResNet']
