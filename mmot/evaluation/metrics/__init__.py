# Copyright (c) mmot contributors. All rights reserved.
from .long_tail_metric import LongTailMetric
from .posthoc_metric import PostHocMetric

__all__ = ['LongTailMetric', 'PostHocMetric']
