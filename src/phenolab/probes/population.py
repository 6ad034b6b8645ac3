"""The population loss, estimated by Monte Carlo on fresh inputs from the task's input distribution.

A fixed test set is one draw; a fresh sample of many points (``Task.sample``, e.g. x ~ N(0, I/d)
for the quadratic teacher) estimates E_x (f(x) - y(x))^2 with a known standard error, which is
what an exact expression for the population loss (e.g. Kumar et al.'s eq. 6, arXiv:2310.06110)
should be compared with.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from phenolab.probes.evaluate import as_2d, predict, target_matrix
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

__all__ = ["fresh_loss_probe"]


@register_probe("fresh_loss")
def fresh_loss_probe(model: nn.Module, task: Task, *, points: int = 10000, seed: int = 0,
                     batch_size: int | None = 5000) -> ProbeResult:
    """MSE (no 1/2) of the model against the noiseless target on ``points`` fresh inputs
    ``task.sample(points, generator)`` drawn with a generator seeded by ``seed`` (the same points at
    every call). Keys: ``mse``, the Monte-Carlo mean of (f - y)^2 over points and outputs, and ``se``,
    its standard error std((f - y)^2) / sqrt(n). Needs a task with ``sample`` and ``target``."""
    if task.sample is None or task.target is None:
        raise ValueError(f"the fresh_loss probe needs a task that can draw fresh inputs and evaluate its "
                         f"target (Task.sample and Task.target); task {task.name!r} cannot")
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    x = task.sample(points, torch.Generator().manual_seed(seed))
    f = as_2d(predict(model, x, batch_size))
    y = target_matrix(task.target(x.to(torch.float64)), f.shape[1])
    sq = ((f - y) ** 2).mean(axis=1)
    return {"mse": float(sq.mean()), "se": float(sq.std(ddof=1) / math.sqrt(len(sq)))}
