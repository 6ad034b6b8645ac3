"""Engines: who trains a run, chosen from its config alone and recorded with its result.

- ``plain``: `phenolab.train.loop.train`, one network at a time: any ``nn.Module``, any objective
  (residuals included);
- ``ensemble``: `phenolab.train.ensemble.train_ensemble`, runs whose networks and data match
  stacked on a leading axis: a model kind that declares itself ``stackable``
  (`phenolab.models.registry`), an objective defined on the outputs (not a residual), and a
  network small enough for stacking to pay (`ENSEMBLE_MAX_PARAMS`; the fused path has no such
  limit). Its gradients come from the fused two-layer ReLU path, the stacked MLP path (`mse`,
  `cross_entropy`), or the generic ``vmap(functional_call)`` path for any other module or objective;
- ``numpy``: `train_numpy`, systems that are not torch modules (a model kind registered with
  ``engine="numpy"``): gradient descent on their own loss and gradient, with the same stopping
  rules, schedule and recording.

``train.engine: auto`` resolves by the rules above from the config alone (`engine_of`), never
from which other runs happen to train at the same time: one config hash has one engine, so one
stored result. A lone ensemble run trains as an ensemble of one. The engine that ran is kept in
the run's summary (``engine``: ``plain``, ``ensemble/fused``, ``ensemble/stacked``, ``numpy``).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from phenolab.config import ConfigError, RunSpec, canonical_json, validate
from phenolab.models import build_model, model_kind, model_kinds, parameter_count
from phenolab.objectives import make_objective
from phenolab.tasks import make_task
from phenolab.tasks.base import Task
from phenolab.train.ensemble_loop import AnyRecorder, fused_applies
from phenolab.train.loop import TrainResult, batch_plan, train
from phenolab.train.recorder import iter_probe_specs
from phenolab.train.schedule import lr_factor
from phenolab.train.seeding import batch_seed, generator
from phenolab.train.stopping import Watch

Progress = Callable[..., None]
EngineFn = Callable[[Task, Sequence[RunSpec], Sequence[AnyRecorder], "Progress | None"], list[TrainResult]]

ENSEMBLE_MAX_PARAMS = 250_000
"""Above this many parameters per network the stacked path is no faster than the plain loop
(its matmuls are already large), and stacking only costs memory; the fused path has no limit."""


def dtype_of(spec: RunSpec) -> torch.dtype:
    return torch.float64 if spec.train.dtype == "float64" else torch.float32


def build_run(spec: RunSpec, task: Task | None = None) -> tuple[Task, nn.Module]:
    """The run's task (unless given) and freshly initialized model, from the run's own random streams."""
    dtype = dtype_of(spec)
    task = make_task(spec.data, spec.seed, dtype=dtype) if task is None else task
    model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"), dtype=dtype)
    return task, model


def engine_of(spec: RunSpec, task: Task) -> str:
    """The engine that trains `spec` (its ``train.engine``, or the ``auto`` rules of the module
    docstring). ConfigError when an explicit choice cannot train it."""
    kind = model_kind(spec.model.kind)
    asked = spec.train.engine
    if kind.engine == "numpy":
        if asked not in ("auto",):
            raise ConfigError([f"train.engine: model.kind {kind.name} is not a torch module and trains with the "
                               f"numpy engine; leave train.engine at auto, got {asked!r}"])
        return "numpy"
    stackable = kind.stackable and make_objective(spec.train.loss).outputs_only
    if asked == "ensemble":
        if not stackable:
            stackables = ", ".join(k.name for k in model_kinds() if k.stackable)
            raise ConfigError([f"train.engine: ensemble needs a stackable model kind ({stackables}) and an objective "
                               f"on the outputs; got model.kind {kind.name} with train.loss {spec.train.loss.kind}"])
        return "ensemble"
    if asked == "plain" or not stackable:
        return "plain"
    if fused_applies(spec, task):
        return "ensemble"
    size = _size(canonical_json(spec.model), task.input_dim, task.output_dim, spec.train.dtype)
    return "ensemble" if size <= ENSEMBLE_MAX_PARAMS else "plain"


@functools.lru_cache(maxsize=1024)
def _size(model_json: str, input_dim: int, output_dim: int, dtype: str) -> int:
    """Parameters of the network a model spec builds (counted on the built model)."""
    spec = validate(RunSpec, {"model": json.loads(model_json)}).model
    dt = torch.float64 if dtype == "float64" else torch.float32
    return parameter_count(build_model(spec, input_dim, output_dim, torch.Generator().manual_seed(0), dt))


def _plain(task: Task, specs: Sequence[RunSpec], recorders: Sequence[AnyRecorder],
           progress: Progress | None) -> list[TrainResult]:
    results = []
    for spec, recorder in zip(specs, recorders):
        model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"), dtype_of(spec))
        results.append(train(model, task, spec.train, probes=spec.probes, recorder=recorder,  # type: ignore[arg-type]
                             generator=generator(batch_seed(spec.seed, spec.train.batch_seed), "batches"),
                             progress=progress))
    return results


def _ensemble(task: Task, specs: Sequence[RunSpec], recorders: Sequence[AnyRecorder],
              progress: Progress | None) -> list[TrainResult]:
    from phenolab.train.ensemble import train_ensemble
    from phenolab.train.workers import data_fingerprint

    results = train_ensemble(task, list(specs), recorders=list(recorders),
                             progress=(lambda step, total: progress(step, total)) if progress else None,
                             data_key=data_fingerprint(task) if len(specs) > 1 else None)
    return [TrainResult(**{f.name: getattr(r, f.name) for f in fields(TrainResult)}) for r in results]


# ------------------------------------------------------------------------------ numpy systems
@runtime_checkable
class NumpyModel(Protocol):
    """A model that is not a torch module: named numpy parameters (updated in place) and its own
    loss and gradient on a batch. Registered as a model kind with ``engine="numpy"``."""

    def parameters(self) -> dict[str, np.ndarray]: ...

    def loss_and_gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]: ...


def train_numpy(model: NumpyModel, task: Task, spec: RunSpec, recorder: AnyRecorder | None = None,
                progress: Progress | None = None) -> TrainResult:
    """Gradient descent (``gd``/``sgd``, with momentum and weight decay as torch's SGD computes them)
    on a `NumpyModel`, with the stopping rules, the schedule, gradient clipping and the probe
    schedule of the torch trainers; the loss is recorded every step as ``loss``."""
    tr = spec.train
    if tr.optimizer not in ("gd", "sgd"):
        raise ConfigError([f"train.optimizer: the numpy engine runs gd or sgd, got {tr.optimizer!r}"])
    started = time.monotonic()
    watch = Watch.of(tr)
    params = model.parameters()
    initial = {k: v.copy() for k, v in params.items()}
    buffers: dict[str, np.ndarray] = {}
    x, y = task.x_train.detach().cpu().numpy(), task.y_train.detach().cpu().numpy()
    batches = batch_plan(len(x), tr, generator(batch_seed(spec.seed, tr.batch_seed), "batches"))

    def observe(step: int, last: bool) -> None:
        due = iter_probe_specs(spec.probes, step, tr.probe_every, last) if recorder is not None else []
        if due:
            recorder.probe(step, model, task, due)  # type: ignore[arg-type, union-attr]

    def result(status: str, step: int, loss: float, reason: str) -> TrainResult:
        return TrainResult(status, step, loss, reason, time.monotonic() - started,  # type: ignore[arg-type]
                           watch.restarts, watch.lr, "numpy")

    for step in range(tr.steps):
        observe(step, last=False)
        idx = batches(step)
        xb, yb = (x, y) if idx is None else (x[idx.numpy()], y[idx.numpy()])
        loss, grads = model.loss_and_gradient(xb, yb)
        if recorder is not None:
            recorder.record(step, loss=loss)
        action, reason = watch.check(step, float(loss))
        if action == "diverged":
            return result("diverged", step, float(loss), reason)
        if action == "restart":
            for name, value in initial.items():
                params[name][...] = value
            buffers.clear()
            if recorder is not None:
                recorder.record(step, lr=watch.lr)
            continue
        if action == "stop":
            observe(step, last=True)
            return result("done", step, float(loss), reason)
        if tr.clip_norm is not None:
            norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
            grads = {k: g * min(1.0, tr.clip_norm / (norm + 1e-6)) for k, g in grads.items()}
        lr = watch.lr * lr_factor(tr, step)
        for name, p in params.items():
            g = grads[name] + tr.weight_decay * p if tr.weight_decay else grads[name]
            if tr.momentum:
                g = buffers[name] = g.copy() if name not in buffers else tr.momentum * buffers[name] + g
            p -= lr * g
        if progress is not None:
            progress(step + 1, tr.steps, float(loss))
        late = watch.late(time.monotonic() - started, step + 1)
        if late is not None:
            return result("failed", step + 1, float(loss), late)
    final, _ = model.loss_and_gradient(x, y)
    if recorder is not None:
        recorder.record(tr.steps, loss=final)
    observe(tr.steps, last=True)
    status, reason = watch.final(float(final))
    return result(status, tr.steps, float(final), reason)


def _numpy(task: Task, specs: Sequence[RunSpec], recorders: Sequence[AnyRecorder],
           progress: Progress | None) -> list[TrainResult]:
    out = []
    for spec, recorder in zip(specs, recorders):
        model: Any = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"),
                                 dtype_of(spec))
        if not isinstance(model, NumpyModel):
            raise TypeError(f"model.kind {spec.model.kind}: the numpy engine needs parameters() and "
                            f"loss_and_gradient(x, y); {type(model).__name__} has not both")
        out.append(train_numpy(model, task, spec, recorder, progress))
    return out


_ENGINES: dict[str, EngineFn] = {"plain": _plain, "ensemble": _ensemble, "numpy": _numpy}


def register_engine(name: str, fn: EngineFn) -> None:
    """Register an engine under `name` (a model kind names it with ``register_model(..., engine=name)``)."""
    if name in _ENGINES and _ENGINES[name] is not fn:
        raise ValueError(f"engine {name!r} is already registered")
    _ENGINES[name] = fn


def train_group(task: Task, specs: Sequence[RunSpec], recorders: Sequence[AnyRecorder],
                progress: Progress | None = None) -> list[TrainResult]:
    """Train a group of runs that share one engine (and, for ``ensemble``, one ensemble key) on `task`."""
    names = {engine_of(s, task) for s in specs}
    if len(names) != 1:
        raise ValueError(f"a group trains with one engine, got {sorted(names)}")
    name = names.pop()
    if name != "ensemble" and len(specs) > 1:
        return [r for s, rec in zip(specs, recorders) for r in _ENGINES[name](task, [s], [rec], progress)]
    return _ENGINES[name](task, specs, recorders, progress)
