"""GD, SGD with momentum and Adam over stacked member parameters, with one learning rate per member.

Each parameter tensor has the members on its leading axis. The updates are torch.optim's
(single-tensor CPU implementations, default hyperparameters), member by member, in the same
order of floating-point operations, so a member updated here rounds like one updated alone:

    SGD:   b = g (first step), b = mu b + g (later);   p = p - lr b   (b = g when mu = 0)
    Adam:  m = lerp(m, g, 1 - beta1),  v = beta2 v + (1 - beta2) g^2,
           p = p + (-lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

With ``weight_decay`` lambda: SGD adds lambda p to the gradient first (torch's SGD), Adam becomes
AdamW (p = p (1 - lr lambda) before the Adam update). ``step(..., lr_factor=c)`` uses lr * c for
this step (a schedule's factor, `phenolab.train.schedule`).

Parameter tensor k may have a learning-rate factor f_k shared by all members (muP's per-layer
scales, `MLP.lr_scales`): member e then updates it with lr = lr_e * f_k, the product the plain
trainer's parameter group holds (`MLP.param_groups`).

`reset(rows)` gives members a fresh optimizer (a restart), `select(keep)` drops members.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

OptimizerName = Literal["gd", "sgd", "adam"]

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults


class StackedOptimizer:
    """One optimizer per member, applied to all members at once."""

    def __init__(self, kind: OptimizerName, params: list[Tensor], lrs: list[float], momentum: float = 0.0,
                 factors: list[float] | None = None, weight_decay: float = 0.0) -> None:
        if kind not in ("gd", "sgd", "adam"):
            raise ValueError(f"train.optimizer: must be one of gd, sgd, adam, got {kind!r}")
        if factors is not None and len(factors) != len(params):
            raise ValueError(f"factors: need one per parameter tensor ({len(params)}), got {len(factors)}")
        self.kind = kind
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.lr_factor = 1.0
        self.lrs = [float(lr) for lr in lrs]
        self.factors = [1.0] * len(params) if factors is None else [float(f) for f in factors]
        n = len(self.lrs)
        self.fresh = [True] * n  # no momentum buffer / Adam step yet
        self.t = [0] * n  # Adam's step count per member
        self.state: list[list[Tensor]] = []
        if kind == "adam":
            self.state = [[torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]]
        elif self.momentum != 0:
            self.state = [[torch.zeros_like(p) for p in params]]
        self._columns: dict[tuple[str, int, float], Tensor] = {}
        self._scratch: dict[tuple[int, int], Tensor] = {}

    def _column(self, name: str, values: list[float], like: Tensor, factor: float = 1.0) -> Tensor:
        """values (E,) (made with lr factor `factor`) as a tensor of `like`'s dtype shaped
        (E, 1, ..., 1) for broadcasting."""
        key = (name, like.ndim, factor)
        col = self._columns.get(key)
        if col is None:
            col = torch.tensor(values, dtype=torch.float64).to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
            self._columns[key] = col
        return col

    def _changed(self) -> None:
        self._columns.clear()

    @torch.no_grad()
    def step(self, params: list[Tensor], grads: list[Tensor], lr_factor: float = 1.0) -> None:
        """One update of every member (all rows of `params`) at learning rates lr * `lr_factor`."""
        if lr_factor != self.lr_factor:
            self.lr_factor = lr_factor
            self._changed()
        if self.kind == "adam":
            self._adam(params, grads)
        else:
            self._sgd(params, grads)
        if any(self.fresh):
            self.fresh = [False] * len(self.fresh)

    def _sgd(self, params: list[Tensor], grads: list[Tensor]) -> None:
        c = self.lr_factor
        neg_lr = {f: [-(lr * c * f) for lr in self.lrs] for f in set(self.factors)}
        fresh = [i for i, f in enumerate(self.fresh) if f]
        for k, (p, g) in enumerate(zip(params, grads)):
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.state[0][k]
                buf.mul_(self.momentum).add_(g)
                if fresh:
                    buf[fresh] = g[fresh]  # torch starts the buffer at the gradient itself
                g = buf
            # p.addcmul_(g, -lr) rounds as torch's p.add_(g, alpha=-lr) (one fused multiply-add)
            f = self.factors[k]
            p.addcmul_(g, self._column("neg_lr", neg_lr[f], p, f))

    def _adam(self, params: list[Tensor], grads: list[Tensor]) -> None:
        self.t = [t + 1 for t in self.t]
        self._changed()  # the bias corrections change every step
        c = self.lr_factor
        step_size = {f: [-(lr * c * f) / (1 - BETA1**t) for lr, t in zip(self.lrs, self.t)] for f in set(self.factors)}
        decay = ({f: [1 - lr * c * f * self.weight_decay for lr in self.lrs] for f in set(self.factors)}
                 if self.weight_decay else None)
        bc2_sqrt = [(1 - BETA2**t) ** 0.5 for t in self.t]
        for k, (p, g) in enumerate(zip(params, grads)):
            m, v = self.state[0][k], self.state[1][k]
            f = self.factors[k]
            if decay is not None:
                p.mul_(self._column("decay", decay[f], p, f))
            m.lerp_(g, 1 - BETA1)
            v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            denom = torch.sqrt(v, out=self._buffer(0, k, p)).div_(self._column("bc2", bc2_sqrt, p)).add_(EPS)
            # torch: p.addcdiv_(m, denom, value=-step_size) computes p + (value * m) / denom
            update = torch.mul(m, self._column("step", step_size[f], p, f), out=self._buffer(1, k, p))
            p.add_(update.div_(denom))

    def _buffer(self, i: int, k: int, like: Tensor) -> Tensor:
        """Scratch space reused every step (fresh allocations of this size page-fault)."""
        key = (i, k)
        buf = self._scratch.get(key)
        if buf is None or buf.shape != like.shape:
            buf = torch.empty_like(like)
            self._scratch[key] = buf
        return buf

    def reset(self, rows: list[int], lrs: list[float]) -> None:
        """Fresh optimizer state for members at `rows` (zeros, step 0) with new learning rates."""
        for row, lr in zip(rows, lrs):
            self.lrs[row] = float(lr)
            self.fresh[row] = True
            self.t[row] = 0
        for group in self.state:
            for s in group:
                s[rows] = 0
        self._changed()

    def select(self, keep: list[int]) -> None:
        """Keep only the members at rows `keep`, in that order."""
        index = torch.tensor(keep, dtype=torch.int64)
        self.lrs = [self.lrs[i] for i in keep]
        self.fresh = [self.fresh[i] for i in keep]
        self.t = [self.t[i] for i in keep]
        self.state = [[s[index] for s in group] for group in self.state]
        self._changed()
