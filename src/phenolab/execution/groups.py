"""Training groups: reuse finished runs by config hash, group the rest by engine, record what comes back.

A `TrainItem` is one planned training run of an experiment. `train_items` looks each one up by
its config hash and the code version (`phenolab.versioning.code_version`: a ``done`` run with that
hash, stored by the same training code, is reused unless ``force``), groups the others
whose networks and data match (`phenolab.train.ensemble.ensemble_key`) and trains each group
in one call of the ensemble trainer, or a lone run with the plain loop. Every run is recorded
as a child of its item's parent experiment run.

Who trains the groups is an executor (`GroupExecutor`; the implementations live beside this
module, `phenolab.execution.executors`): by default each group trains here, one after another,
recording live (`train_group`). An executor that trains elsewhere sends `train_group_buffered`
(`phenolab.execution.jobs`) with the group's specs to a worker, which records into
`BufferRecorder`s and returns a `GroupResult`; this process opens the runs (`open_runs`),
replays the buffers and closes them (`record_group`, or `fail_group` when no result came
back). Only this process writes the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from phenolab import versioning
from phenolab.config import RunSpec, SeededData, config_hash
from phenolab.errors import error_line
from phenolab.execution.jobs import GroupResult, train_runs
from phenolab.experiments.base import RunData
from phenolab.store import Store
from phenolab.tasks import Task, make_task
from phenolab.train import Recorder, TrainResult
from phenolab.train.engines import dtype_of, engine_of
from phenolab.train.ensemble import ensemble_key
from phenolab.train.workers import data_fingerprint

ProgressFn = Callable[[str, int, int, float], None]
GroupDone = Callable[[int, list[RunData]], None]


@dataclass(frozen=True)
class TrainItem:
    """One planned training run: the experiment it belongs to, its label, spec and parent run."""

    experiment: str
    label: str
    spec: RunSpec
    parent_id: int | None = None
    run_id: int | None = None  # its claimed ``running`` run (`train_items`), once claimed

    @property
    def config_hash(self) -> str:
        return config_hash(self.spec)


class GroupExecutor(Protocol):
    """What `train_items` hands its ensemble groups to (implementations: `phenolab.execution.executors`)."""

    def train_groups(self, groups: Sequence[Sequence[TrainItem]], store: Store, progress: ProgressFn | None,
                     done: GroupDone, tasks: TaskCache | None = None) -> None:
        """Train every group into `store` (on the tasks of `tasks`, built once), calling
        ``done(k, run_data)`` in this process as group k is recorded (in any order); on an
        exception or Ctrl-C, close the runs it opened and re-raise."""
        ...

    def run_calls(self, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...], str]], *,
                  on_start: Callable[[int], None] | None = None, on_done: Callable[[int, Any], None]) -> None:
        """Call every ``fn(*args)`` (where the executor runs jobs) and hand ``on_done(i, value)`` each
        result in this process, or an object with a ``reason`` when the call was given up."""
        ...


class TaskCache:
    """Tasks built once per (data spec, data seed, dtype), with their data fingerprints: the
    plan's check, the grouping and the inline training share them; workers get them with the job."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, int, str], Task] = {}
        self._prints: dict[tuple[str, int, str], str] = {}

    @staticmethod
    def key(spec: RunSpec) -> tuple[str, int, str]:
        data_seed = cast(SeededData, spec.data).seed
        seed = data_seed if data_seed is not None else spec.seed
        return config_hash(spec.data), seed, spec.train.dtype

    def seed(self, spec: RunSpec, task: Task) -> None:
        """Keep `task`, already built for `spec` (e.g. by `phenolab.experiments.runner.plan_config`)."""
        self._tasks.setdefault(self.key(spec), task)

    def get(self, spec: RunSpec) -> Task:
        key = self.key(spec)
        if key not in self._tasks:
            self._tasks[key] = make_task(spec.data, spec.seed, dtype=dtype_of(spec))
        return self._tasks[key]

    def fingerprint(self, spec: RunSpec) -> str:
        key = self.key(spec)
        if key not in self._prints:
            self._prints[key] = data_fingerprint(self.get(spec))
        return self._prints[key]


WAIT_S = 0.5
"""How often a driver looks again at a run another live process is training (`train_items`)."""


def train_items(items: Sequence[TrainItem], store: Store, *, force: bool = False,
                progress: ProgressFn | None = None, executor: GroupExecutor | None = None,
                tasks: TaskCache | None = None) -> list[RunData]:
    """Train (or reuse) every item; returns their `RunData` in the items' order.

    Each distinct config hash is claimed in the store before it trains (`Store.claim_run`): a
    ``done`` run of the same training code is reused; one that another live process is training is
    waited for (and reused, or claimed when that process is gone or the run did not end ``done``);
    otherwise the claim creates its ``running`` run. ``force`` trains every item anew. The claimed
    runs are grouped (`_groups`) and trained by `executor` (None: here, one after another, as the
    ``inline`` executor does). A run that failed before is trained again: only ``done`` is reused.
    """
    tasks = tasks if tasks is not None else TaskCache()
    items = list(items)  # claimed items get their run id (`TrainItem.run_id`) in place
    results: dict[int, RunData] = {}
    first_of: dict[tuple[str, str], int] = {}  # identical specs within one call train once
    pending: list[int] = []
    for i, item in enumerate(items):
        key = (item.experiment, item.config_hash)
        if key not in first_of:
            first_of[key] = i
            pending.append(i)
    version = versioning.code_version()
    while pending:
        claimed: list[int] = []
        busy: list[int] = []
        for i in pending:
            item = items[i]
            config = item.spec.model_dump(mode="json")
            if force:
                status, run = "claimed", store.create_run(
                    kind="train", name=item.experiment, config=config, config_hash=item.config_hash,
                    parent_id=item.parent_id, label=item.label, code_version=version)
            else:
                status, run = store.claim_run(kind="train", name=item.experiment, config=config,
                                              config_hash=item.config_hash, code_version=version,
                                              parent_id=item.parent_id, label=item.label)
            if status == "done":
                results[i] = RunData(item.label, run, item.spec, "done", None, store)
            elif status == "busy":
                busy.append(i)
            else:
                claimed.append(i)
                items[i] = replace(item, run_id=run)
        if claimed:
            _train_claimed(items, claimed, store, progress, executor, tasks, results)
        elif busy:
            time.sleep(WAIT_S)
        pending = busy
    for i, item in enumerate(items):
        if i not in results:
            src = results[first_of[(item.experiment, item.config_hash)]]
            results[i] = RunData(item.label, src.run_id, item.spec, src.status, src.error, store)
    return [results[i] for i in range(len(items))]


def _train_claimed(items: Sequence[TrainItem], claimed: list[int], store: Store, progress: ProgressFn | None,
                   executor: GroupExecutor | None, tasks: TaskCache, results: dict[int, RunData]) -> None:
    """Group the claimed items and train the groups; on an exception the claimed runs that are
    still ``running`` are closed (``interrupted`` on Ctrl-C, else ``failed``) before it propagates."""
    groups = _groups(items, claimed, tasks)
    finished = 0

    def group_done(k: int, data: list[RunData]) -> None:
        nonlocal finished
        for i, run in zip(groups[k], data):
            results[i] = run
        finished += 1
        if progress is not None and len(groups) > 1:  # the overall bar: groups finished
            progress("training groups", finished, len(groups), float("nan"))

    group_items = [[items[i] for i in group] for group in groups]
    try:
        if executor is None:
            for k, group in enumerate(group_items):
                group_done(k, train_group(group, store, progress, tasks.get(group[0].spec)))
        else:
            executor.train_groups(group_items, store, progress, group_done, tasks)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        for i in claimed:
            run = items[i].run_id
            if run is not None and store.get_run(run)["status"] == "running":
                store.finish_run(run, status, error=error_line(exc))
        raise


def _groups(items: Sequence[TrainItem], indices: list[int], tasks: TaskCache) -> list[list[int]]:
    """Indices grouped by engine (`phenolab.train.engines.engine_of`) and, for the ensemble, by
    ensemble key (data, architecture, optimizer, schedule), in plan order."""
    groups: dict[tuple, list[int]] = {}
    for i in indices:
        spec = items[i].spec
        task = tasks.get(spec)
        if engine_of(spec, task) != "ensemble":
            groups[("alone", i)] = [i]  # the plain loop (or the numpy engine), one run after another
            continue
        key = ensemble_key(spec, task.input_dim, task.output_dim, data_key=tasks.fingerprint(spec))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def group_label(group: Sequence[TrainItem]) -> str:
    """How progress and error messages name a group: its run's label, or its size and first label."""
    return group[0].label if len(group) == 1 else f"{len(group)} runs ({group[0].label}, ...)"


def open_runs(group: Sequence[TrainItem], store: Store) -> list[Recorder]:
    """One `Recorder` per item of the group: on its claimed run, or a new ``running`` run stamped with
    the code version for an item that was not claimed."""
    version = versioning.code_version()
    return [Recorder(store, item.experiment, item.spec, kind="train", parent_id=item.parent_id, label=item.label,
                     code_version=version, run_id=item.run_id)
            for item in group]


def close_runs(recorders: Sequence[Recorder], status: str, error: str) -> None:
    """Close the recorders still open as `status` (``failed`` or ``interrupted``) with `error`."""
    for rec in recorders:
        if rec.status is None:
            rec.close(status, error=error)


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


def train_group(group: Sequence[TrainItem], store: Store, progress: ProgressFn | None = None,
                task: Task | None = None) -> list[RunData]:
    """Train one group in this process on `task` (built here when not given), recording live into
    the store (the ``inline`` path). On an exception or Ctrl-C its runs are closed ``failed`` or
    ``interrupted`` and it re-raises."""
    first = group[0].spec
    task = make_task(first.data, first.seed, dtype=dtype_of(first)) if task is None else task
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
