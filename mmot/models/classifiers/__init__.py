# Copyright (c) mmot contributors. All rights reserved.
from .authors_ot_image_classifier import AuthorsOTImageClassifier
from .ot_image_classifier import OTImageClassifier

__all__ = ['OTImageClassifier', 'AuthorsOTImageClassifier']
