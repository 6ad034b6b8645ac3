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
from phenolab.objectives import Batch, make_objective
from phenolab.train.recorder import Recorder, iter_probe_specs

Progress = Callable[[int, int, float], None]
Status = Literal["done", "diverged", "failed"]


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``done``, ``diverged`` (NaN/inf or loss above train.max_loss) or ``failed``."""

    status: Status
    steps: int
    final_loss: float
    reason: str
    wall_s: float
    restarts: int = 0
    lr: float = math.nan  # the learning rate in force at the end (after restarts)


def make_optimizer(params: Sequence[nn.Parameter] | nn.Module | object, spec: TrainSpec,
                   lr: float | None = None) -> torch.optim.Optimizer:
    """GD and SGD are `torch.optim.SGD` (GD on the full batch); Adam is `torch.optim.Adam`.

    `params` are parameters or parameter groups, or a module: one with a method
    ``param_groups(lr, optimizer)`` (phenolab's `MLP`: per-layer learning rates lr * scale,
    muP's) is optimized in those groups, any other module with all its parameters at `lr`.
    """
    lr = spec.lr if lr is None else lr
    if isinstance(params, nn.Module):
        groups = getattr(params, "param_groups", None)
        params = groups(lr, spec.optimizer) if callable(groups) else params.parameters()
    if spec.optimizer in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr, momentum=spec.momentum)
    return torch.optim.Adam(params, lr=lr)


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
    """Train `model` on `task.x_train, task.y_train` for at most `spec.steps` steps.

    At step 0, every `probe_every` steps and after the last step the probes run; with a
    recorder the training loss is recorded every step as ``loss``. Endings, all results and
    not exceptions: NaN, inf or a loss above `spec.max_loss` -> ``diverged``; `spec.time_limit`
    seconds passed -> ``failed``; loss <= `spec.stop_ratio` x initial loss -> ``done`` early.
    With `spec.restart_on_jump = j`, a loss above (1 + j) x the previous step's restarts
    training from the initial weights at half the learning rate (the phase-diagram code's
    rule), at most `spec.max_restarts` times; the step count runs on.
    """
    if spec.optimizer == "gd" and spec.batch_size is not None:
        raise ValueError("train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for minibatches")
    objective = make_objective(spec.loss)
    lr = spec.lr
    optimizer = make_optimizer(model, spec, lr)
    initial = [p.detach().clone() for p in model.parameters()] if spec.restart_on_jump else []
    x, y = task.x_train, task.y_train
    batches = batch_plan(len(x), spec, generator)
    started = time.monotonic()
    model.train()

    probed: dict[int, set[int]] = {}  # step -> indices of the probes already run at that step

    def observe(step: int, last: bool) -> None:
        if recorder is None:
            return
        due = iter_probe_specs(probes, step, spec.probe_every, last)
        done = probed.setdefault(step, set())
        todo = [p for p in due if id(p) not in done]
        done.update(id(p) for p in todo)
        if todo:
            recorder.probe(step, model, task, todo)

    def result(status: Status, step: int, loss: float, reason: str) -> TrainResult:
        return TrainResult(status, step, loss, reason, time.monotonic() - started, restarts, lr)

    loss_value = first_loss = previous = math.nan
    restarts = 0
    for step in range(spec.steps):
        observe(step, last=False)
        idx = batches(step)
        xb, yb = (x, y) if idx is None else (x[idx], y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss = objective(model, Batch(xb, yb, task.points))
        loss_value = float(loss.detach())
        if recorder is not None:
            recorder.record(step, loss=loss_value)
        if not math.isfinite(loss_value) or loss_value > spec.max_loss:
            return result("diverged", step, loss_value,
                          f"loss = {loss_value:.4g} at step {step} (bound train.max_loss = {spec.max_loss:g})")
        if spec.restart_on_jump and loss_value > (1 + spec.restart_on_jump) * previous and restarts < spec.max_restarts:
            restarts, lr = restarts + 1, lr / 2
            with torch.no_grad():
                for p, p0 in zip(model.parameters(), initial):
                    p.copy_(p0)
            optimizer = make_optimizer(model, spec, lr)
            previous = math.nan
            if recorder is not None:
                recorder.record(step, lr=lr)
            continue
        first_loss = loss_value if math.isnan(first_loss) else first_loss
        previous = loss_value
        if spec.stop_ratio is not None and loss_value <= spec.stop_ratio * first_loss:
            observe(step, last=True)
            return result("done", step, loss_value, f"loss fell to train.stop_ratio x its initial value at step {step}")
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, spec.steps, loss_value)
        if spec.time_limit is not None and time.monotonic() - started > spec.time_limit:
            return result("failed", step + 1, loss_value,
                          f"time limit train.time_limit = {spec.time_limit:g} s reached after {step + 1} steps")

    with torch.no_grad() if objective.outputs_only else torch.enable_grad():  # a residual differentiates in x
        final = float(objective(model, Batch(x, y, task.points)))
    if recorder is not None:
        recorder.record(spec.steps, loss=final)
    observe(spec.steps, last=True)
    model.eval()
    if not math.isfinite(final) or final > spec.max_loss:
        return result("diverged", spec.steps, final, f"final loss = {final:.4g} (bound train.max_loss = {spec.max_loss:g})")
    return result("done", spec.steps, final, "finished")
