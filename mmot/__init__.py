# Copyright (c) mmot contributors. All rights reserved.
"""mmot: optimal-transport example re-weighting for long-tailed
classification, as an mmpretrain plug-in.

Importing mmot registers its components into mmpretrain's registries, adds
the ``mmot::`` config scope and allowlists the classes mmengine checkpoints
hold for ``torch.load(weights_only=True)``.
"""
from .version import __version__  # noqa: F401
from . import utils  # noqa: F401,E402  (checkpoint allowlist, mmot:: scope)
from . import datasets, engine, evaluation, models  # noqa: F401,E402

__all__ = ['__version__']
