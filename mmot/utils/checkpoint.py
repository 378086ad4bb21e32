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

For resuming, :func:`verify_checkpoint` checks a file before it is used
(CRC of every record, allowlist, weights-only load) and raises an error that
names it; :func:`find_resumable_checkpoint` is the auto-resume of
``tools/train.py --resume``: the checkpoint ``last_checkpoint`` names, or the
newest one that passes the check; :func:`check_model_matches_checkpoint`
turns layers of the wrong shape into an error.
"""
import glob
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Callable, List, Optional, Tuple, Union

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


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is truncated, corrupt or not a checkpoint."""


def _check_zip_records(path: str) -> None:
    """Read every record of a zip-format checkpoint and verify its CRC-32.

    ``torch.load`` does not check the CRCs, so damaged tensor data would
    load silently. Records written without a CRC (``torch.serialization.
    set_crc32_options(False)`` stores 0) are skipped.
    """
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.CRC == 0:
                continue
            with zf.open(info) as f:
                while f.read(1 << 22):
                    pass


def verify_checkpoint(path: Union[str, os.PathLike]) -> None:
    """Check that a checkpoint is intact and loads with ``weights_only``.

    Cheap enough to run before every resume: the file is read once (CRC
    check of each record of the zip container), its pickle is scanned for
    globals outside the allowlist, and it is loaded with
    ``torch.load(weights_only=True, mmap=True)``, which builds the containers
    without reading the tensor data again.

    Args:
        path (str | os.PathLike): The checkpoint file.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CorruptCheckpointError: If the file is empty, truncated, damaged or
            not a checkpoint written by ``torch.save``. The message names the
            file.
        pickle.UnpicklingError: If it pickles objects outside the allowlist
            (the names are listed); nothing of it is executed.
    """
    register_checkpoint_safe_globals()
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    if osp.getsize(path) == 0:
        raise CorruptCheckpointError(
            f'Checkpoint {path} is empty (0 bytes); it was not written '
            'completely')
    is_zip = zipfile.is_zipfile(path)
    try:
        if is_zip:
            _check_zip_records(path)
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
                path)
            if unsafe:
                raise pickle.UnpicklingError(
                    f'Checkpoint {path} is refused: it pickles objects that '
                    'torch.load(weights_only=True) does not allow: '
                    f'{sorted(unsafe)}')
        torch.load(path, map_location='cpu', weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as err:
        msg = str(err)
        if msg.startswith(f'Checkpoint {path} is refused'):
            raise
        # drop torch's boilerplate around the reason
        boiler = ('Weights only load failed', 'Please file an issue',
                  'Check the documentation of torch.load', '(1) ', '(2) ')
        lines = [ln.strip() for ln in msg.splitlines()
                 if ln.strip() and not ln.strip().startswith(boiler)]
        detail = ' '.join(lines) or type(err).__name__
        if 'global' in msg.lower():
            raise pickle.UnpicklingError(
                f'Checkpoint {path} is refused by torch.load(weights_only='
                f'True): {detail}') from None
        raise CorruptCheckpointError(
            f'Checkpoint {path} is truncated or corrupt and cannot be '
            f'loaded: {detail}') from None
    except Exception as err:  # zipfile.BadZipFile, RuntimeError, EOFError..
        reason = str(err).split('. This is an internal miniz error')[0] \
            or type(err).__name__
        raise CorruptCheckpointError(
            f'Checkpoint {path} is truncated or corrupt and cannot be '
            f'loaded: {reason}') from None


_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def list_checkpoints(work_dir: Union[str, os.PathLike]) -> List[str]:
    """The ``epoch_*.pth`` / ``iter_*.pth`` checkpoints of a work directory,
    newest (highest epoch or iteration) first.

    Args:
        work_dir (str | os.PathLike): The work directory of a run.

    Returns:
        list[str]: Paths of the checkpoints.
    """
    found = []
    for path in glob.glob(osp.join(os.fspath(work_dir), '*.pth')):
        match = _CKPT_NAME.match(osp.basename(path))
        if match and osp.isfile(path):
            found.append((int(match.group(2)), osp.getmtime(path), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def find_resumable_checkpoint(work_dir: Union[str, os.PathLike],
                              logger: Optional[Callable[[str], Any]] = None
                              ) -> Optional[str]:
    """The checkpoint auto-resume should continue from.

    The candidate is the one ``work_dir/last_checkpoint`` names (what
    mmengine's auto-resume picks). If it is missing, truncated or corrupt
    (see :func:`verify_checkpoint`), a warning is logged and the newest
    ``epoch_*.pth`` / ``iter_*.pth`` of ``work_dir`` that passes the check is
    taken instead.

    Args:
        work_dir (str | os.PathLike): The work directory of the run.
        logger (callable, optional): Called with each warning message.
            Defaults to mmengine's ``print_log`` at level WARNING.

    Returns:
        str | None: The checkpoint path, or None if ``work_dir`` has no
        checkpoint at all (training starts from scratch).

    Raises:
        CorruptCheckpointError: If there are checkpoints but none of them
            loads.
    """
    from mmengine.logging import print_log
    from mmengine.runner import find_latest_checkpoint

    def warn(msg):
        if logger is not None:
            logger(msg)
        else:
            import logging
            print_log(msg, logger='current', level=logging.WARNING)

    work_dir = os.fspath(work_dir)
    candidates = []
    last = find_latest_checkpoint(work_dir) \
        if osp.isfile(osp.join(work_dir, 'last_checkpoint')) else None
    if last:
        candidates.append(last)
    seen = {osp.abspath(c) for c in candidates}
    candidates += [
        c for c in list_checkpoints(work_dir) if osp.abspath(c) not in seen
    ]
    failed = []
    for path in candidates:
        try:
            verify_checkpoint(path)
        except (CorruptCheckpointError, FileNotFoundError,
                pickle.UnpicklingError) as err:
            warn(f'auto-resume: skipping {path}: {err}')
            failed.append(path)
            continue
        if failed:
            warn(f'auto-resume: falling back to the previous good checkpoint '
                 f'{path}')
        return path
    if failed:
        raise CorruptCheckpointError(
            f'auto-resume: no checkpoint in {work_dir} can be loaded (tried '
            f'{failed}); remove them or pass --resume PATH')
    return None


def check_model_matches_checkpoint(model: torch.nn.Module,
                                   path: Union[str, os.PathLike]) -> None:
    """Raise if the weights of a checkpoint do not fit ``model``'s shapes.

    mmengine loads ``load_from`` / resume checkpoints non-strictly and only
    warns about size mismatches, leaving those layers randomly initialised
    (and a resumed optimiser state of the wrong shape). This check turns a
    mismatch (e.g. a classifier trained with another ``num_classes``) into
    an error that names the file and the layers.

    Args:
        model (torch.nn.Module): The model (a DDP wrapper is unwrapped).
        path (str | os.PathLike): The checkpoint file.

    Raises:
        ValueError: If a parameter or buffer present in both has different
            shapes.
    """
    path = os.fspath(path)
    model = getattr(model, 'module', model)
    ckpt = torch.load(path, map_location='cpu', weights_only=True,
                      mmap=zipfile.is_zipfile(path))
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    own = model.state_dict()
    bad = []
    for key, value in state.items():
        key = re.sub(r'^module\.', '', key)
        if key.endswith('_extra_state'):  # serialised state, any length
            continue
        if key in own and own[key].numel() == 0:
            continue  # lazily sized state (the re-weighter's before setup)
        if key in own and hasattr(value, 'shape') and \
                tuple(value.shape) != tuple(own[key].shape):
            bad.append(f'{key}: {tuple(value.shape)} in the checkpoint, '
                       f'{tuple(own[key].shape)} in the model')
    if bad:
        hint = ''
        head = getattr(model, 'head', None)
        if any(b.startswith('head.') for b in bad) and \
                hasattr(head, 'num_classes'):
            hint = (f' (model.head.num_classes={head.num_classes}; was the '
                    'checkpoint trained with another number of classes?)')
        raise ValueError(
            f'Checkpoint {path} does not fit the model{hint}: '
            + '; '.join(bad) + '. To initialise only the backbone from it, '
            "use model.backbone.init_cfg=dict(type='Pretrained', "
            "checkpoint=..., prefix='backbone') instead of load_from")


__all__ = [
    'HISTORY_BUFFER_METHODS', 'history_buffer_getattr',
    'get_checkpoint_safe_globals', 'register_checkpoint_safe_globals',
    'check_checkpoint', 'CorruptCheckpointError', 'verify_checkpoint',
    'list_checkpoints', 'find_resumable_checkpoint',
    'check_model_matches_checkpoint'
]
