"""Train planned runs into the store: reuse finished ones by config hash, batch the rest as ensembles.

A `TrainItem` is one planned training run of an experiment. `train_items` looks each one up by
its config hash and the code version (`phenolab.versioning.code_version`: a ``done`` run with that
hash, stored by the same training code, is reused unless ``force``), groups the others
whose networks and data match (`phenolab.train.ensemble.ensemble_key`) and trains each group
in one call of the ensemble trainer, or a lone run with the plain loop. Every run is recorded
as a child of its item's parent experiment run.

Who trains the groups is an executor (`GroupExecutor`; the implementations live in
`phenolab.sweep.executors`): by default each group trains here, one after another, recording
live (`train_group`). An executor that trains elsewhere sends `train_group_buffered`
(`phenolab.train.workers`) with the group's specs to a worker, which records into
`BufferRecorder`s and returns a `GroupResult`; this process opens the runs (`open_runs`),
replays the buffers and closes them (`record_group`, or `fail_group` when no result came
back). Only this process writes the store.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from phenolab import versioning
from phenolab.config import RunSpec, config_hash
from phenolab.experiments.base import RunData
from phenolab.models import build_model
from phenolab.store import Store
from phenolab.tasks import Task, make_task
from phenolab.train import Recorder, TrainResult, generator
from phenolab.train.engines import dtype_of, engine_of
from phenolab.train.ensemble import ensemble_key
from phenolab.train.workers import GroupResult, data_fingerprint, train_runs

ProgressFn = Callable[[str, int, int, float], None]
GroupDone = Callable[[int, list[RunData]], None]


@dataclass(frozen=True)
class TrainItem:
    """One planned training run: the experiment it belongs to, its label, spec and parent run."""

    experiment: str
    label: str
    spec: RunSpec
    parent_id: int | None = None

    @property
    def config_hash(self) -> str:
        return config_hash(self.spec)


def build(spec: RunSpec, task: Task | None = None) -> tuple[Task, nn.Module]:
    """The run's task (unless given) and freshly initialized model (from the run's own random streams)."""
    dtype = dtype_of(spec)
    task = make_task(spec.data, spec.seed, dtype=dtype) if task is None else task
    model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"), dtype=dtype)
    return task, model


class GroupExecutor(Protocol):
    """What `train_items` hands its ensemble groups to (implementations: `phenolab.sweep.executors`)."""

    def train_groups(self, groups: Sequence[Sequence[TrainItem]], store: Store, progress: ProgressFn | None,
                     done: GroupDone) -> None:
        """Train every group into `store`, calling ``done(k, run_data)`` in this process as group k
        is recorded (in any order); on an exception or Ctrl-C, close the runs it opened and re-raise."""
        ...

    def run_calls(self, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...], str]], *,
                  on_start: Callable[[int], None] | None = None, on_done: Callable[[int, Any], None]) -> None:
        """Call every ``fn(*args)`` (where the executor runs jobs) and hand ``on_done(i, value)`` each
        result in this process, or an object with a ``reason`` when the call was given up."""
        ...


def train_items(items: Sequence[TrainItem], store: Store, *, force: bool = False,
                progress: ProgressFn | None = None, executor: GroupExecutor | None = None) -> list[RunData]:
    """Train (or reuse) every item; returns their `RunData` in the items' order.

    `executor` trains the groups (None: here, one after another, as the ``inline`` executor does).
    """
    results: dict[int, RunData] = {}
    todo: list[int] = []
    version = versioning.code_version()
    for i, item in enumerate(items):
        done = None if force else store.find_done("train", item.experiment, item.config_hash, version)
        if done is not None:
            results[i] = RunData(item.label, done, item.spec, "done", None, store)
        else:
            todo.append(i)
    # identical specs within one call train once
    first_of: dict[tuple[str, str], int] = {}
    unique = []
    for i in todo:
        key = (items[i].experiment, items[i].config_hash)
        if key in first_of:
            continue
        first_of[key] = i
        unique.append(i)
    groups = _groups(items, unique)
    finished = 0

    def group_done(k: int, data: list[RunData]) -> None:
        nonlocal finished
        for i, run in zip(groups[k], data):
            results[i] = run
        finished += 1
        if progress is not None and len(groups) > 1:  # the overall bar: groups finished
            progress("training groups", finished, len(groups), float("nan"))

    group_items = [[items[i] for i in group] for group in groups]
    if executor is None:
        for k, group in enumerate(group_items):
            group_done(k, train_group(group, store, progress))
    elif group_items:
        executor.train_groups(group_items, store, progress, group_done)
    for i in todo:
        if i not in results:
            src = results[first_of[(items[i].experiment, items[i].config_hash)]]
            results[i] = RunData(items[i].label, src.run_id, items[i].spec, src.status, src.error, store)
    return [results[i] for i in range(len(items))]


def _groups(items: Sequence[TrainItem], indices: list[int]) -> list[list[int]]:
    """Indices grouped by ensemble key (data, architecture, optimizer, schedule), in plan order."""
    groups: dict[tuple, list[int]] = {}
    seen: dict[tuple[str, int, str], tuple[str, Task]] = {}  # (data, seed, dtype) -> fingerprint, task
    for i in indices:
        spec = items[i].spec
        seed = spec.data.seed if spec.data.seed is not None else spec.seed
        where = (config_hash(spec.data), seed, spec.train.dtype)
        if where not in seen:
            task = make_task(spec.data, spec.seed, dtype=dtype_of(spec))
            seen[where] = (data_fingerprint(task), task)
        fingerprint, task = seen[where]
        if engine_of(spec, task) != "ensemble":
            groups[("alone", i)] = [i]  # the plain loop (or the numpy engine), one run after another
            continue
        groups.setdefault(ensemble_key(spec, task.input_dim, task.output_dim, data_key=fingerprint), []).append(i)
    return list(groups.values())


def group_label(group: Sequence[TrainItem]) -> str:
    """How progress and error messages name a group: its run's label, or its size and first label."""
    return group[0].label if len(group) == 1 else f"{len(group)} runs ({group[0].label}, ...)"


def open_runs(group: Sequence[TrainItem], store: Store) -> list[Recorder]:
    """One `Recorder` (a ``running`` run in the store, stamped with the code version) per item of the group."""
    version = versioning.code_version()
    return [Recorder(store, item.experiment, item.spec, kind="train", parent_id=item.parent_id, label=item.label,
                     code_version=version)
            for item in group]


def close_runs(recorders: Sequence[Recorder], status: str, error: str) -> None:
    """Close the recorders still open as `status` (``failed`` or ``interrupted``) with `error`."""
    for rec in recorders:
        if rec.status is None:
            rec.close(status, error=error)


def error_line(exc: BaseException) -> str:
    """``Type: message``, first line only: what a run's error column keeps of an exception."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by the user (KeyboardInterrupt)"
    return traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]


def _close_results(group: Sequence[TrainItem], recorders: Sequence[Recorder], results: Sequence[TrainResult],
                   store: Store) -> list[RunData]:
    out = []
    for item, rec, result in zip(group, recorders, results):
        error = None if result.status == "done" else result.reason
        rec.close(result.status, error=error, summary={"final_loss": result.final_loss, "steps": result.steps,
                                                        "wall_s": result.wall_s, "restarts": result.restarts,
                                                        "lr": result.lr, "engine": result.engine})
        out.append(RunData(item.label, rec.run_id, item.spec, result.status, error, store))
    return out


def train_group(group: Sequence[TrainItem], store: Store, progress: ProgressFn | None = None) -> list[RunData]:
    """Train one ensemble group in this process, recording live into the store (the ``inline`` path).

    On an exception or Ctrl-C its runs are closed ``failed`` or ``interrupted`` and it re-raises.
    """
    first = group[0].spec
    task = make_task(first.data, first.seed, dtype=dtype_of(first))
    recorders = open_runs(group, store)
    label = group_label(group)
    callback = (lambda step, total, loss=float("nan"): progress(label, step, total, loss)) if progress else None
    try:
        results = train_runs(task, [item.spec for item in group], recorders, callback)
    except BaseException as exc:
        close_runs(recorders, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", error_line(exc))
        raise
    return _close_results(group, recorders, results, store)


def record_group(group: Sequence[TrainItem], recorders: Sequence[Recorder], result: GroupResult,
                 store: Store) -> list[RunData]:
    """Replay a worker's records into the group's open runs and close them with their results."""
    if len(result.results) != len(group) or len(result.buffers) != len(group):
        raise ValueError(f"group {group_label(group)!r}: {len(group)} runs, but the worker returned "
                         f"{len(result.results)} results and {len(result.buffers)} record buffers")
    for rec, buffer in zip(recorders, result.buffers):
        buffer.replay(rec)
    return _close_results(group, recorders, result.results, store)


def fail_group(group: Sequence[TrainItem], recorders: Sequence[Recorder], reason: str,
               store: Store) -> list[RunData]:
    """Close the group's open runs ``failed`` with `reason` (no result came back from its worker)."""
    close_runs(recorders, "failed", reason)
    return [RunData(item.label, rec.run_id, item.spec, "failed", reason, store) for item, rec in zip(group, recorders)]
