# Copyright (c) mmot contributors. All rights reserved.
"""Let mmengine checkpoints load with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: its
unpickler only builds tensors, containers and the globals that were
explicitly allowlisted. mmengine 0.10.x calls ``torch.load`` without
``weights_only`` in ``Runner.resume`` and ``load_from``
(``mmengine.runner.checkpoint._load_checkpoint``), and the checkpoints written
by ``CheckpointHook`` hold, besides the weights, the ``message_hub`` state:
:class:`mmengine.logging.HistoryBuffer` objects whose logs are numpy arrays.

Instead of turning the safe loader off,
:func:`register_checkpoint_safe_globals` allowlists exactly what those
checkpoints pickle (found by saving checkpoints with a Runner and listing what
the safe loader rejects):

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* ``numpy.ndarray`` and ``numpy.dtype``, and the array and scalar rebuild
  functions ``_reconstruct`` and ``scalar`` of numpy's C module, under their
  numpy >= 2 names (``numpy._core.multiarray.*``) and the names numpy 1.x
  wrote (``numpy.core.multiarray.*``);
* the concrete dtype classes of numeric (bool, integer, floating point)
  dtypes, e.g. ``numpy.dtypes.Float64DType``: the unpickler restores a dtype's
  state only if its type is allowlisted. Object dtypes, which could carry
  arbitrary Python objects, stay refused;
* ``builtins.getattr``, which the pickles of ``HistoryBuffer`` use to refer to
  its statistics methods (``getattr(HistoryBuffer, 'mean')``: pickle protocol
  2 cannot name a method directly). The real ``getattr`` is *not* allowlisted:
  the name resolves to :func:`history_buffer_getattr`, which only returns those
  methods and raises for anything else.

Nothing else is allowed, so a checkpoint that references any other class or
function (e.g. ``os.system``) is still refused with
``pickle.UnpicklingError``.
"""
import os
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# The statistics methods that HistoryBuffer registers for every instance
# (see ``HistoryBuffer._set_default_statistics``) and therefore pickles.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

# Numeric dtype characters whose dtype classes may be rebuilt: bool, signed
# and unsigned integers of every C width, and float16/32/64.
_NUMERIC_DTYPE_CHARS = '?bhilqBHILQefd'


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """The restricted ``getattr`` that checkpoints resolve instead of the
    builtin one.

    Pickle protocol 2 stores a reference to ``HistoryBuffer.mean`` as
    ``getattr(HistoryBuffer, 'mean')``. This function returns such methods
    and nothing else.

    Args:
        obj (Any): The object whose attribute is requested; must be the
            :class:`HistoryBuffer` class.
        name (str): The attribute name; must be one of
            :data:`HISTORY_BUFFER_METHODS`.

    Returns:
        Callable: The requested ``HistoryBuffer`` statistics method.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        'Refusing getattr({!r}, {!r}) while loading a checkpoint: only the '
        'HistoryBuffer statistics methods {} may be looked up.'.format(
            obj, name, HISTORY_BUFFER_METHODS))


def _numpy_multiarray():
    """Return numpy's C multiarray module without deprecated imports."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def get_checkpoint_safe_globals() -> List[SafeGlobal]:
    """Return the entries :func:`register_checkpoint_safe_globals` adds.

    Returns:
        list: Classes and functions (allowlisted under their own qualified
        name) and ``(object, 'qualified.name')`` tuples (allowlisted under
        that name, used for aliases).
    """
    multiarray = _numpy_multiarray()
    safe: List[SafeGlobal] = [HistoryBuffer, np.ndarray, np.dtype]
    for func_name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, func_name)
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            safe.append((func, f'{module}.{func_name}'))
    dtype_classes = []
    for char in _NUMERIC_DTYPE_CHARS:
        dtype_class = type(np.dtype(char))
        if dtype_class not in dtype_classes:
            dtype_classes.append(dtype_class)
    safe.extend(dtype_classes)
    safe.append((history_buffer_getattr, 'builtins.getattr'))
    return safe


def register_checkpoint_safe_globals() -> None:
    """Allowlist the globals of mmengine checkpoints for ``torch.load``.

    Calls ``torch.serialization.add_safe_globals`` with the entries of
    :func:`get_checkpoint_safe_globals` that are not registered yet, so it
    is idempotent (and repairs a cleared allowlist). Called on
    ``import mmot``.
    """
    current = torch.serialization.get_safe_globals()
    missing = [
        item for item in get_checkpoint_safe_globals() if item not in current
    ]
    if missing:
        torch.serialization.add_safe_globals(missing)


def check_checkpoint(path: Union[str, os.PathLike]) -> List[str]:
    """List the globals of a checkpoint that ``torch.load`` would refuse.

    The file is scanned, not unpickled, so this is safe for untrusted files.
    The mmot allowlist is registered first.

    Args:
        path (str | os.PathLike): Path of a checkpoint written by
            ``torch.save`` (zip format).

    Returns:
        list[str]: The qualified names of the refused globals; empty if the
        checkpoint loads with ``weights_only=True``.
    """
    register_checkpoint_safe_globals()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))


__all__ = [
    'HISTORY_BUFFER_METHODS', 'history_buffer_getattr',
    'get_checkpoint_safe_globals', 'register_checkpoint_safe_globals',
    'check_checkpoint'
]
