# Copyright (c) mmot contributors. All rights reserved.
import warnings
from typing import Callable, Tuple

import torch
from mmengine import dist

from mmpretrain.registry import MODELS
from mmot.ot.global_ot import global_ot
from mmot.ot.reweighter import GlobalOTProblem, resize_
from .base_learner import BaseWeightLearner, distributed


@MODELS.register_module()
class GlobalWeightVector(BaseWeightLearner):
    """OT re-weighting over the whole training set (paper Eq. 4-6 as
    written): w is one measure over the N training examples, transported to
    the meta measure Q as a whole, not batch by batch.

    * **Feature bank.** Each training example's classifier-input feature is
      kept in a bank (N x E, float32), refreshed when its batch passes
      (no extra forward passes; in a decoupled stage 2 with a frozen
      backbone a feature only changes through augmentation). An example
      whose feature was never seen is left out of the OT problem and keeps
      its weight (initially ``1/N``, loss weight 1), so it never gets a NaN
      or an arbitrary weight.
    * **The step.** Every ``interval`` iterations: the entropic OT between
      ``a = w_S / sum(w_S)`` over the examples S in the bank and Q
      (:func:`mmot.ot.global_ot.global_ot`, streamed over row blocks, no
      N x M matrix beyond ``cache_bytes``), its exact gradient ``g = dL/da``
      (implicit differentiation), and one mirror-descent (exponentiated
      gradient) step on the simplex, ``w_i <- w_i exp(-lr (g_i - <a, g>))``
      renormalised to the mass S had - a step whose size does not depend on
      N (a plain gradient step on a measure with entries ~1/N would need a
      step size ~N).
    * **Loss weights.** The weight of example i in a batch of B is
      ``N w_i / B``, so the stage-2 loss ``sum_i (N w_i / B) l_i`` is the
      mean loss when w is uniform (``w_i = 1/N``); ``N`` is the number of
      training examples.

    * **Step size.** With ``adapt_lr`` (default) the step is halved after
      a global step that raised the OT value and grown by 10 % (up to
      ``lr``) after one that lowered it ("bold driver"): in the class
      masses the objective is nearly piecewise linear (the label part is
      ``~ sum_c max(0, m_c - 1/K)``, smoothed only on a ~1e-4 scale at
      lambda = 0.1), so a fixed step oscillates around class balance with an
      amplitude ~ ``lr``; the adapted one reaches it to 1e-6 in ~30 steps on
      the CIFAR-10-LT IF100 labels. Values are compared only between steps
      on the same examples (not while the bank fills).

    With the label cost alone the optimum gives every class 1/K of the
    mass (class balance; ``tests/test_ot/test_global_ot.py``); the feature part of
    the cost then distributes each class's mass over its examples.

    Distributed runs: every rank writes all ranks' batch features into its
    bank (an all-gather per iteration), so banks, global steps and w stay
    identical on all ranks.

    Args:
        lr (float): Mirror-descent step size (>= 0), the largest one with
            ``adapt_lr``. Defaults to 1.0.
        adapt_lr (bool): Adapt the step size (see above). Defaults to True.
        interval (int): Iterations between global steps (>= 1).
            Defaults to 1.
        max_iter (int, optional): Sinkhorn iterations of the global solve;
            None: the re-weighter's ``max_iter``. Defaults to None.
        block_rows (int): Rows per block of the streamed solve.
            Defaults to 8192.
        cache_bytes (int): Keep the N x M cost (float64, 8 bytes an entry)
            when it fits in this many bytes, else recompute blocks each
            pass. Defaults to 1 GiB.
        objective (str): What the step minimises: ``'transport'``, the
            transport cost ``<T*, C>`` (as the per-batch learners and POT's
            ``sinkhorn2``), or ``'regularised'``, the entropic objective
            ``<T*, C> - reg H(T*)``, whose entropy of the row marginal keeps
            the mass spread over the examples of a class (the transport
            cost's minimiser concentrates it on the few examples nearest the
            prototype: docs/benchmarks/cifar10-lt-if100-global-quick).
            Defaults to ``'transport'``.
    """

    is_global = True

    def __init__(self,
                 lr: float = 1.0,
                 adapt_lr: bool = True,
                 interval: int = 1,
                 max_iter=None,
                 block_rows: int = 8192,
                 cache_bytes: int = 2**30,
                 objective: str = 'transport'):
        super().__init__(lr, momentum=0.0, weight_decay=0.0)
        if objective not in ('transport', 'regularised'):
            raise ValueError("GlobalWeightVector.objective must be "
                             f"'transport' or 'regularised', got {objective!r}")
        self.objective = objective
        for name, v in (('interval', interval), ('block_rows', block_rows)):
            if not (isinstance(v, int) and not isinstance(v, bool)
                    and v >= 1):
                raise ValueError(f'GlobalWeightVector.{name} must be an int '
                                 f'>= 1, got {v!r}')
        if max_iter is not None and not (isinstance(max_iter, int)
                                         and max_iter >= 1):
            raise ValueError('GlobalWeightVector.max_iter must be an int >= '
                             f'1 or None, got {max_iter!r}')
        if not (isinstance(cache_bytes, int) and cache_bytes >= 0):
            raise ValueError('GlobalWeightVector.cache_bytes must be an int '
                             f'>= 0, got {cache_bytes!r}')
        self.adapt_lr = bool(adapt_lr)
        self.interval = interval
        self.max_iter = max_iter
        self.block_rows = block_rows
        self.cache_bytes = cache_bytes
        for name in ('w', 'bank', 'filled', 'labels', 'in_train', 'steps'):
            self.register_buffer(name, torch.empty(0))
        # the adapted step size and the OT value of the last global step
        self.register_buffer('step_lr', torch.tensor(float(lr),
                                                      dtype=torch.float64))
        self.register_buffer('last_value', torch.tensor(float('nan'),
                                                         dtype=torch.float64))
        # the last solve's column potential: the warm start of the next
        # (state, so a resumed run solves exactly as an uninterrupted one)
        self.register_buffer('g_prev', torch.empty(0, dtype=torch.float64))
        self.register_buffer('last_count', torch.zeros((), dtype=torch.long))
        self.last_iters = 0
        self.num_train = 0

    def build(self, num_samples, labels, class_counts, feat_dim):
        dev = self.w.device
        labels = torch.as_tensor(labels, dtype=torch.long).to(dev)
        train = labels >= 0
        n_train = int(train.sum())
        if n_train == 0:
            raise ValueError('GlobalWeightVector: no training example')
        w = resize_(self.w, (num_samples, ), torch.float64).zero_()
        w[train] = 1.0 / n_train
        resize_(self.bank, (num_samples, feat_dim), torch.float32).zero_()
        resize_(self.filled, (num_samples, ), torch.bool).zero_()
        resize_(self.labels, (num_samples, ), torch.long).copy_(labels)
        resize_(self.in_train, (num_samples, ), torch.bool).copy_(train)
        resize_(self.steps, (), torch.long).zero_()
        self.num_train = n_train

    # -- the weights -------------------------------------------------------
    def measure(self, idx, z):
        """Loss weights of the batch divided by B: ``N w_i / B`` (they sum
        to 1 when w is uniform)."""
        w = self.w[idx]
        return (w * (self.num_train / len(idx))).float()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the warm-start potential has the last Q's size
        value = state_dict.get(prefix + 'g_prev')
        if value is not None:
            resize_(self.g_prev, value.shape, value.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.in_train.numel():
            self.num_train = int(self.in_train.sum())

    def _write_bank(self, idx, z):
        if distributed():
            parts = dist.all_gather_object((idx.cpu(),
                                            z.detach().float().cpu()))
            idx = torch.cat([p[0] for p in parts]).to(self.bank.device)
            z = torch.cat([p[1] for p in parts]).to(self.bank.device)
        self.bank[idx] = z.detach().float().to(self.bank.device)
        self.filled[idx] = True

    @torch.no_grad()
    def global_step(self, support: Tuple[torch.Tensor, torch.Tensor],
                    cost: Callable, num_classes: int, reg: float,
                    max_iter: int, tol: float) -> torch.Tensor:
        """One global OT step on the examples in the bank; returns the OT
        value before the step."""
        sel = (self.filled & self.in_train).nonzero().flatten()
        zq, yq = support
        zq = zq.float().to(self.bank.device)
        yq = yq.to(self.bank.device)
        mass = self.w[sel].sum()
        a = (self.w[sel] / mass).clamp_min(torch.finfo(torch.float64).tiny)
        b = torch.full((len(zq), ), 1.0 / len(zq), dtype=torch.float64,
                       device=a.device)
        bank, labels = self.bank, self.labels

        def cost_block(s, e):
            rows = sel[s:e]
            return cost(bank[rows], labels[rows], zq, yq, num_classes)

        g0 = self.g_prev if len(self.g_prev) == len(zq) else None
        res = global_ot(a, b, cost_block, reg,
                        max_iter=self.max_iter or max_iter, tol=tol,
                        block_rows=self.block_rows,
                        cache_bytes=self.cache_bytes, g_init=g0,
                        objective=self.objective)
        # warm start of the next solve (w and the bank change a little)
        resize_(self.g_prev, res.g.shape).copy_(res.g.detach())
        self.last_iters = res.n_iter
        if not (torch.isfinite(res.value) and torch.isfinite(res.grad_a).all()):
            warnings.warn('GlobalWeightVector: non-finite global OT value or '
                          'gradient; weight step skipped')
            return res.value
        # compare with the last value only on the same examples (while the
        # bank fills, new examples change the value, not the step)
        same = int(self.last_count) == len(sel)
        self.last_count.fill_(len(sel))
        if self.adapt_lr and same and torch.isfinite(self.last_value):
            self.step_lr.copy_(self.step_lr * 0.5 if res.value >
                               self.last_value else torch.clamp(
                                   self.step_lr * 1.1, max=self.lr))
        self.last_value.copy_(res.value)
        g = res.grad_a.double()
        g = g - (a * g).sum()
        new = a * torch.exp(-self.step_lr * g)
        self.w[sel] = new / new.sum() * mass
        return res.value

    @torch.no_grad()
    def update(self, idx, z, problem: GlobalOTProblem):
        """Write the batch into the bank, take the global step when due,
        return ``(batch weights / B, last OT value, stepped)``."""
        self._write_bank(idx, z)
        self.steps += 1
        stepped = int(self.steps) % self.interval == 0
        if stepped:
            self.global_step(problem.support(), problem.cost,
                             problem.num_classes, problem.reg,
                             problem.max_iter, problem.tol)
        return self.measure(idx, z), self.last_value.float(), stepped

    def class_mass(self) -> torch.Tensor:
        """The mass of each class in w (K,)."""
        k = int(self.labels.max()) + 1
        lab = self.labels[self.in_train]
        return torch.zeros(k, dtype=torch.float64, device=lab.device
                           ).index_add_(0, lab, self.w[self.in_train]).cpu()
