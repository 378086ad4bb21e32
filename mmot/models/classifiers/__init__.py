# Copyright (c) mmot contributors. All rights reserved.
from .ot_image_classifier import OTImageClassifier

__all__ = ['OTImageClassifier']
