# Copyright (c) mmot contributors. All rights reserved.
"""Backbone (and neck) outputs of the training set, computed once, for a
decoupled stage 2 that trains the head only."""
import hashlib
import os
import os.path as osp
import random
from typing import Iterable, Optional, Sequence

import numpy as np
import torch


class FeatureCache:
    """``V`` views of the frozen backbone's output (the neck's, when there is
    one) for every training example, indexed by the dataset's
    ``sample_idx``.

    View ``v`` of example ``i`` is the output for the training pipeline's
    ``v``-th random augmentation of image ``i`` (drawn at :meth:`fill` from
    a generator seeded by ``seed``, so a resumed run refills the same
    views), computed in eval mode (BatchNorm with its running statistics)
    without gradients. Training epoch ``e`` reads view ``e mod V``
    (:meth:`set_epoch`): the head sees V augmentations in turn instead of a
    fresh one per epoch; ``V = 1`` with a deterministic pipeline is exactly
    the uncached frozen-backbone run.

    Args:
        views (int): V. Defaults to 1.
        seed (int): Seed of the augmentations drawn at :meth:`fill`.
            Defaults to 0.
    """

    def __init__(self, views: int = 1, seed: int = 0):
        if not (isinstance(views, int) and views >= 1):
            raise ValueError(f'feature_cache.views must be an int >= 1, got '
                             f'{views!r}')
        self.views = views
        self.seed = int(seed)
        self.feats: Optional[Sequence[torch.Tensor]] = None  # (N, V, ...)
        self.filled: Optional[torch.Tensor] = None  # (N,) bool
        self.view = 0

    def set_epoch(self, epoch: int) -> None:
        self.view = epoch % self.views

    @torch.no_grad()
    def fill(self, extract, loader, num_samples: int) -> None:
        """Run ``extract(batch) -> (sample_idx, tuple of (B, ...) tensors)``
        over ``loader`` ``V`` times. The global RNGs (python, numpy, torch)
        are seeded for the augmentations and restored afterwards, so the
        training's random stream is the same with or without the cache."""
        state = (random.getstate(), np.random.get_state(),
                 torch.get_rng_state())
        feats, filled = None, torch.zeros(num_samples, dtype=torch.bool)
        try:
            for v in range(self.views):
                random.seed(self.seed * 1000 + v)
                np.random.seed(self.seed * 1000 + v)
                torch.manual_seed(self.seed * 1000 + v)
                for batch in loader:
                    idx, out = extract(batch)
                    if feats is None:
                        feats = [o.new_zeros(num_samples, self.views,
                                             *o.shape[1:]) for o in out]
                    for f, o in zip(feats, out):
                        f[idx, v] = o
                    filled[idx] = True
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
            torch.set_rng_state(state[2])
        self.feats, self.filled = feats, filled

    # -- a file shared by runs ---------------------------------------------
    def fingerprint(self, modules: Iterable[torch.nn.Module],
                    num_samples: int, extra: str = '') -> str:
        """SHA-256 of what the cached outputs depend on: V, the seed, the
        number of examples, every parameter and buffer of ``modules`` (the
        frozen networks the outputs come from) and ``extra`` (e.g. the
        training pipeline and the labels)."""
        h = hashlib.sha256(f'{self.views} {self.seed} {num_samples} '
                           f'{extra}'.encode())
        for m in modules:
            for name, t in m.state_dict().items():
                if not isinstance(t, torch.Tensor):
                    continue
                t = t.detach().cpu().contiguous()
                h.update(f'{name} {t.dtype} {tuple(t.shape)}'.encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def save(self, path: str, key: str) -> None:
        """Write the filled cache to ``path`` (atomically: a run killed
        while writing leaves no half file) under ``key``."""
        if self.feats is None:
            raise RuntimeError('FeatureCache.fill() was not called')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = f'{path}.tmp{os.getpid()}'
        torch.save(dict(key=key, feats=list(self.feats), filled=self.filled),
                   tmp)
        os.replace(tmp, path)

    def load(self, path: str, key: str) -> bool:
        """Take the cache in ``path`` if it was saved under ``key``; False
        (and nothing loaded) when the file is missing or was computed from
        another network, data or augmentation seed."""
        if not osp.isfile(path):
            return False
        state = torch.load(path, map_location='cpu', weights_only=True)
        if state.get('key') != key:
            return False
        self.feats, self.filled = tuple(state['feats']), state['filled']
        return True

    def apply(self, fn) -> None:
        """``fn`` (a ``Module._apply`` function: ``.to()`` etc.) on the
        cached tensors, so the cache follows the model it belongs to."""
        if self.feats is not None:
            self.feats = tuple(fn(f) for f in self.feats)
            self.filled = fn(self.filled)

    def lookup(self, idx: torch.Tensor):
        """The cached outputs (a tuple, as the neck's) of examples ``idx``
        for the current view."""
        if self.feats is None:
            raise RuntimeError('FeatureCache.fill() was not called')
        missing = ~self.filled[idx.to(self.filled.device)]
        if missing.any():
            raise KeyError(f'feature cache: sample_idx '
                           f'{idx[missing.to(idx.device)][:5].tolist()} were '
                           'not in the cached training set')
        return tuple(f[idx.to(f.device), self.view] for f in self.feats)
