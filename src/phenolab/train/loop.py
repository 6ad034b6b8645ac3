"""The plain training loop: GD, minibatch SGD or Adam on one network, with probes on a schedule.

The loop knows nothing of the terminal: progress goes to an optional callback
``progress(step, total_steps, loss)``; records go to a `Recorder` (or nowhere).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import nn
from torch.optim.optimizer import ParamsT

from phenolab.config import ProbeSpec, TrainSpec
from phenolab.objectives import Batch, make_objective
from phenolab.tasks.base import Task
from phenolab.train.recorder import Recorder, iter_probe_specs
from phenolab.train.schedule import device_of, lr_factor, scheduled
from phenolab.train.stopping import Watch

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
    engine: str = ""  # who trained it: plain, ensemble/fused, ensemble/stacked, numpy


def make_optimizer(params: ParamsT | nn.Module, spec: TrainSpec,
                   lr: float | None = None) -> torch.optim.Optimizer:
    """GD and SGD are `torch.optim.SGD` (GD on the full batch); Adam is `torch.optim.Adam`, or
    `torch.optim.AdamW` with ``train.weight_decay`` > 0 (decoupled decay); SGD takes the decay
    as an L2 term in the gradient.

    `params` are parameters or parameter groups, or a module: one with a method
    ``param_groups(lr, optimizer)`` (phenolab's `MLP`: per-layer learning rates lr * scale,
    muP's) is optimized in those groups, any other module with all its parameters at `lr`.
    Each group keeps its starting learning rate as ``base_lr`` for the schedule (`set_lr_factor`).
    """
    lr = spec.lr if lr is None else lr
    if isinstance(params, nn.Module):
        groups = getattr(params, "param_groups", None)
        params = groups(lr, spec.optimizer) if callable(groups) else params.parameters()
    optimizer: torch.optim.Optimizer
    if spec.optimizer in ("gd", "sgd"):
        optimizer = torch.optim.SGD(params, lr=lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    elif spec.weight_decay > 0:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=spec.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=lr)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    return optimizer


def set_lr_factor(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Every parameter group's learning rate to ``base_lr * factor`` (`phenolab.train.schedule`)."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


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

    At step 0, every `probe_every` steps and after the last step the probes run (on the CPU);
    with a recorder the training loss is recorded every step as ``loss``. The stopping rules are
    `phenolab.train.stopping`'s (divergence, restart on a jump, stop ratio, time limit), all
    endings results and not exceptions. The objective is `train.loss` (`phenolab.objectives`)
    on the batch and the task's named point sets; the learning rate follows the schedule
    (`phenolab.train.schedule`); ``clip_norm`` clips the gradient's norm; ``device`` moves the
    model and the data there for training, and the model back to its first device at the end.
    """
    if spec.optimizer == "gd" and spec.batch_size is not None:
        raise ValueError("train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for minibatches")
    objective = make_objective(spec.loss)
    device = device_of(spec)
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.to(device)
    watch = Watch.of(spec)
    optimizer = make_optimizer(model, spec, watch.lr)
    initial = [p.detach().clone() for p in model.parameters()] if spec.restart_on_jump else []
    x, y = task.x_train.to(device), task.y_train.to(device)
    points = {name: value.to(device) for name, value in task.points.items()}
    batches = batch_plan(len(x), spec, generator)
    trained = [p for p in model.parameters() if p.requires_grad]
    schedule = scheduled(spec)
    started = time.monotonic()
    model.train()
    twin = _ProbeTwin(model) if device.type != "cpu" else None

    probed: dict[int, set[int]] = {}  # step -> indices of the probes already run at that step

    def observe(step: int, last: bool) -> None:
        if recorder is None:
            return
        due = iter_probe_specs(probes, step, spec.probe_every, last)
        done = probed.setdefault(step, set())
        todo = [p for p in due if id(p) not in done]
        done.update(id(p) for p in todo)
        if todo:
            recorder.probe(step, model if twin is None else twin.sync(), task, todo)

    def result(status: Status, step: int, loss: float, reason: str) -> TrainResult:
        model.to(home)
        return TrainResult(status, step, loss, reason, time.monotonic() - started, watch.restarts, watch.lr, "plain")

    loss_value = math.nan
    for step in range(spec.steps):
        observe(step, last=False)
        idx = batches(step)
        xb, yb = (x, y) if idx is None else (x[idx], y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss = objective(model, Batch(xb, yb, points))
        loss_value = float(loss.detach())
        if recorder is not None:
            recorder.record(step, loss=loss_value)
        action, reason = watch.check(step, loss_value)
        if action == "diverged":
            return result("diverged", step, loss_value, reason)
        if action == "restart":
            with torch.no_grad():
                for p, p0 in zip(model.parameters(), initial):
                    p.copy_(p0)
            optimizer = make_optimizer(model, spec, watch.lr)
            if recorder is not None:
                recorder.record(step, lr=watch.lr)
            continue
        if action == "stop":
            observe(step, last=True)
            return result("done", step, loss_value, reason)
        loss.backward()
        if spec.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(trained, spec.clip_norm)
        if schedule:
            set_lr_factor(optimizer, lr_factor(spec, step))
        optimizer.step()
        if progress is not None:
            progress(step + 1, spec.steps, loss_value)
        late = watch.late(time.monotonic() - started, step + 1)
        if late is not None:
            return result("failed", step + 1, loss_value, late)

    with torch.no_grad() if objective.outputs_only else torch.enable_grad():  # a residual differentiates in x
        final = float(objective(model, Batch(x, y, points)))
    if recorder is not None:
        recorder.record(spec.steps, loss=final)
    observe(spec.steps, last=True)
    model.eval()
    status, reason = watch.final(final)
    return result(status, spec.steps, final, reason)


class _ProbeTwin:
    """A CPU copy of a model that trains on another device: probes run on the CPU."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.copy = copy.deepcopy(model).to("cpu")

    def sync(self) -> nn.Module:
        self.copy.load_state_dict({k: v.detach().to("cpu") for k, v in self.model.state_dict().items()})
        self.copy.train(self.model.training)
        return self.copy
