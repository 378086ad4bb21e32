# Copyright (c) mmot contributors. All rights reserved.
"""Make ``mmot::`` config paths resolvable by mmengine.

mmengine resolves ``_base_ = ['mmot::_base_/default_runtime.py']`` in two
steps: ``mmengine.config.utils.MODULE2PACKAGE`` must map the scope ``mmot``
to a pip package, and ``get_installed_path(package)`` + ``/.mim/configs/``
must be the folder of the configs (``setup.py`` links or copies
``configs/`` there).

mmengine finds the installed path through ``pkg_resources``'s
``Distribution.location``. For a PEP 660 editable install (what recent pip and
setuptools do for ``pip install -e .``) that location is ``site-packages``,
where no ``mmot`` folder exists, so the lookup would point to a missing
folder. :func:`register_mmot_package` therefore makes the lookup of the
package ``mmot`` return the folder the running ``mmot`` was imported from,
which is right for every kind of install; other packages are looked up by
mmengine as before.
"""
import os.path as osp
from typing import Callable

MMOT_PACKAGE = 'mmot'
# The folder of the `mmot` package (this file is mmot/utils/setup_env.py).
MMOT_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def get_mmot_installed_path() -> str:
    """Return the folder of the imported ``mmot`` package.

    Returns:
        str: Absolute path of the ``mmot`` package folder (which holds
        ``.mim/configs`` once mmot is pip-installed).
    """
    return MMOT_ROOT


def _wrap_get_installed_path(func: Callable) -> Callable:
    if getattr(func, '_mmot_wrapped', False):
        return func

    def get_installed_path(package: str) -> str:
        if package == MMOT_PACKAGE:
            return get_mmot_installed_path()
        return func(package)

    get_installed_path._mmot_wrapped = True
    get_installed_path.__wrapped__ = func
    get_installed_path.__doc__ = func.__doc__
    return get_installed_path


def _wrap_is_installed(func: Callable) -> Callable:
    if getattr(func, '_mmot_wrapped', False):
        return func

    def is_installed(package: str) -> bool:
        if package == MMOT_PACKAGE:
            return True
        return func(package)

    is_installed._mmot_wrapped = True
    is_installed.__wrapped__ = func
    is_installed.__doc__ = func.__doc__
    return is_installed


def register_mmot_package() -> None:
    """Register ``mmot`` as an external config package of mmengine.

    Adds ``'mmot': 'mmot'`` to ``mmengine.config.utils.MODULE2PACKAGE`` and
    makes ``mmengine.config.config``'s package lookups answer for ``mmot``
    with the folder of the imported package. Idempotent; called on
    ``import mmot``.
    """
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils

    config_utils.MODULE2PACKAGE.setdefault(MMOT_PACKAGE, MMOT_PACKAGE)
    config_module.get_installed_path = _wrap_get_installed_path(
        config_module.get_installed_path)
    config_module.is_installed = _wrap_is_installed(
        config_module.is_installed)


def mim_configs_path() -> str:
    """Return where mmengine looks for ``mmot::`` configs.

    Returns:
        str: ``<mmot package>/.mim/configs``. It exists once mmot is
        installed with pip (a link to the repository's ``configs/`` for an
        editable install, a copy otherwise).
    """
    return osp.join(get_mmot_installed_path(), '.mim', 'configs')


def setup_cpu_distributed(cfg) -> bool:
    """Prepare a ``launcher='pytorch'`` config for a host without GPUs.

    mmengine 0.10 assumes GPUs in its PyTorch launcher: ``init_dist`` calls
    ``torch.cuda.set_device`` and the default model wrapper passes
    ``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``. On a host
    without CUDA this function initializes the process group itself with
    the gloo backend (the Runner then skips its own initialization) and, if
    the config sets no ``model_wrapper_cfg``, wraps the model with
    ``MMDistributedDataParallel`` without device ids. It does nothing for
    other launchers or when CUDA is available.

    Args:
        cfg (mmengine.Config): The config, after ``cfg.launcher`` was set.

    Returns:
        bool: Whether the config was prepared for CPU distributed running.

    Raises:
        ValueError: If ``env_cfg.dist_cfg.backend`` is not ``'gloo'``.
    """
    import datetime

    import torch
    import torch.distributed as dist

    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    dist_cfg = dict((cfg.get('env_cfg', None) or {}).get('dist_cfg', None)
                    or {})
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        raise ValueError(
            'No GPU is available, so distributed runs need the gloo backend, '
            f'but env_cfg.dist_cfg.backend is {backend!r}; add '
            '`--cfg-options env_cfg.dist_cfg.backend=gloo`.')
    if not dist.is_initialized():
        timeout = dist_cfg.pop('timeout', None)
        if timeout is not None:
            dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
        dist.init_process_group(backend='gloo', **dist_cfg)
    if cfg.get('model_wrapper_cfg', None) is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True


__all__ = [
    'register_mmot_package', 'get_mmot_installed_path', 'mim_configs_path',
    'setup_cpu_distributed'
]
