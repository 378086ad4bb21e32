# Copyright (c) mmot contributors. All rights reserved.
"""Utilities; importing this package prepares mmengine for mmot.

Importing ``mmot.utils`` (done early by ``import mmot``) registers the
checkpoint allowlist for ``torch.load(weights_only=True)`` and the ``mmot::``
config scope. It only imports torch, numpy and light mmengine modules.
"""
from .checkpoint import (check_checkpoint, get_checkpoint_safe_globals,
                         history_buffer_getattr,
                         register_checkpoint_safe_globals)
from .model import unwrap_model
from .setup_env import (get_mmot_installed_path, mim_configs_path,
                        register_mmot_package, setup_cpu_distributed)

register_checkpoint_safe_globals()
register_mmot_package()

__all__ = [
    'check_checkpoint', 'get_checkpoint_safe_globals',
    'history_buffer_getattr', 'register_checkpoint_safe_globals',
    'register_mmot_package', 'get_mmot_installed_path', 'mim_configs_path',
    'setup_cpu_distributed', 'unwrap_model'
]
