"""The plain training loop: GD, minibatch SGD or Adam on one network, with probes on a schedule.

The loop knows nothing of the terminal: progress goes to an optional callback
``progress(step, total_steps, loss)``; records go to a `Recorder` (or nowhere).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import nn

from phenolab.config import ProbeSpec, TrainSpec
from phenolab.tasks.base import Task
from phenolab.train.losses import get_loss
from phenolab.train.recorder import Recorder, iter_probe_specs

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``done``, ``diverged`` (NaN/inf or loss above train.max_loss) or ``failed``."""

    status: Literal["done", "diverged", "failed"]
    steps: int
    final_loss: float
    reason: str
    wall_s: float


def make_optimizer(params: Sequence[nn.Parameter] | object, spec: TrainSpec) -> torch.optim.Optimizer:
    """GD and SGD are `torch.optim.SGD` (GD on the full batch); Adam is `torch.optim.Adam`."""
    if spec.optimizer in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum)
    return torch.optim.Adam(params, lr=spec.lr)


def batch_plan(n: int, spec: TrainSpec, generator: torch.Generator | None) -> Callable[[int], torch.Tensor | None]:
    """Minibatch indices for each step (None = full batch). SGD reshuffles every epoch."""
    if spec.optimizer == "gd" or spec.batch_size is None or spec.batch_size >= n:
        return lambda step: None
    size = spec.batch_size
    per_epoch = n // size  # the last incomplete batch is dropped
    order: list[torch.Tensor] = []

    def indices(step: int) -> torch.Tensor:
        epoch, pos = divmod(step, per_epoch)
        while len(order) <= epoch:
            order.append(torch.randperm(n, generator=generator))
        return order[epoch][pos * size:(pos + 1) * size]

    return indices


def train(
    model: nn.Module,
    task: Task,
    spec: TrainSpec,
    *,
    probes: Sequence[ProbeSpec] = (),
    recorder: Recorder | None = None,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train `model` on `task.x_train, task.y_train` for `spec.steps` steps.

    At step 0, every `probe_every` steps and after the last step the probes run and
    (with a recorder) the training loss is recorded every step as ``loss``. A loss that is
    NaN, infinite or above `spec.max_loss` stops the run as ``diverged``; passing
    `spec.time_limit` seconds stops it as ``failed``. Both are results, not exceptions.
    """
    if spec.optimizer == "gd" and spec.batch_size is not None:
        raise ValueError("train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for minibatches")
    loss_fn = get_loss(spec.loss)
    optimizer = make_optimizer(model.parameters(), spec)
    x, y = task.x_train, task.y_train
    batches = batch_plan(len(x), spec, generator)
    started = time.monotonic()
    model.train()

    def observe(step: int, last: bool) -> None:
        due = iter_probe_specs(probes, step, spec.probe_every, last)
        if recorder is not None and due:
            recorder.probe(step, model, task, due)

    loss_value = math.nan
    for step in range(spec.steps):
        observe(step, last=False)
        idx = batches(step)
        xb, yb = (x, y) if idx is None else (x[idx], y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss_value = float(loss.detach())
        if recorder is not None:
            recorder.record(step, loss=loss_value)
        if not math.isfinite(loss_value) or loss_value > spec.max_loss:
            return TrainResult("diverged", step, loss_value,
                               f"loss = {loss_value:.4g} at step {step} (bound train.max_loss = {spec.max_loss:g})",
                               time.monotonic() - started)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, spec.steps, loss_value)
        if spec.time_limit is not None and time.monotonic() - started > spec.time_limit:
            return TrainResult("failed", step + 1, loss_value,
                               f"time limit train.time_limit = {spec.time_limit:g} s reached after {step + 1} steps",
                               time.monotonic() - started)

    with torch.no_grad():
        final = float(loss_fn(model(x), y))
    if recorder is not None:
        recorder.record(spec.steps, loss=final)
    observe(spec.steps, last=True)
    model.eval()
    status: Literal["done", "diverged"] = "done"
    reason = "finished"
    if not math.isfinite(final) or final > spec.max_loss:
        status, reason = "diverged", f"final loss = {final:.4g} (bound train.max_loss = {spec.max_loss:g})"
    return TrainResult(status, spec.steps, final, reason, time.monotonic() - started)
