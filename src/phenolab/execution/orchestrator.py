"""The orchestrator: one sequence for an experiment and for every point of a sweep.

An experiment run is a one-point sweep. For each point (a `Prepared`: resolved config, plan, first
task), in order, once:

1. a ``done`` experiment run with its config hash is judged again from its stored runs
   (`phenolab.experiments.runner.reuse`); such a point needs nothing else;
2. otherwise its parent run (kind ``experiment``) is claimed (`Store.claim_run`; a point another
   live driver is running is waited for, then judged again) with one `TrainItem` per planned run;
3. every point's items go through one `train_items` call: finished runs are reused by config hash
   and code version, the rest are claimed, grouped by engine and ensemble key across points, and
   trained by the executor (inline, local pool or Ray);
4. each point's computations run (`measure_items`), then `finish` judges the point's stored runs
   and writes its verdict, figures and report.

On an exception (Ctrl-C included) the parents still ``running`` are closed ``interrupted`` or
``failed`` and it propagates. The sweep itself (its record, its summary) is `phenolab.sweep.run`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from phenolab.errors import error_line
from phenolab.execution.groups import WAIT_S, GroupExecutor, ProgressFn, TaskCache, TrainItem, train_items
from phenolab.execution.measure import measure_items
from phenolab.experiments.runner import Outcome, Prepared, finish, prepare, reuse
from phenolab.store import Store


def open_parent(prepared: Prepared, store: Store, sweep_id: str | None = None) -> tuple[int, list[TrainItem]]:
    """Create the point's parent run and the training items that hang from it."""
    parent = store.create_run(kind="experiment", name=prepared.experiment.name,
                              config=prepared.config.model_dump(mode="json"), config_hash=prepared.config_hash,
                              label=prepared.config.preset, sweep_id=sweep_id)
    return parent, _items(prepared, parent)


def claim_parent(prepared: Prepared, store: Store, sweep_id: str | None = None) -> tuple[str, int, list[TrainItem]]:
    """Claim the point's parent run (`Store.claim_run`): ``("busy", id, [])`` when another live
    driver is running the same experiment config, else ``("claimed", id, items)``."""
    status, parent = store.claim_run(kind="experiment", name=prepared.experiment.name,
                                     config=prepared.config.model_dump(mode="json"),
                                     config_hash=prepared.config_hash, code_version=None,
                                     label=prepared.config.preset, sweep_id=sweep_id, reuse_done=False)
    return status, parent, [] if status == "busy" else _items(prepared, parent)


def _items(prepared: Prepared, parent: int) -> list[TrainItem]:
    return [TrainItem(prepared.experiment.name, label, spec, parent) for label, spec in prepared.plan]


def close_on_error(store: Store, parents: Sequence[int], exc: BaseException) -> None:
    """Mark runs that did not finish: ``interrupted`` on Ctrl-C, else ``failed`` with the error."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    for parent in parents:
        if store.get_run(parent)["status"] == "running":
            store.finish_run(parent, status, error=error_line(exc))


def run_points(prepared: Sequence[Prepared], store: Store, *, force: bool = False,
               progress: ProgressFn | None = None, executor: GroupExecutor | None = None,
               sweep_id: str | None = None, judged: Mapping[int, Outcome] | None = None) -> list[Outcome]:
    """Run (or judge again) every point, in the order of the module docstring; one `Outcome` per
    point, in order. `judged`: points whose outcome the caller already has (by index). A point that
    another live driver is running is waited for and then judged again from its stored runs."""
    outcomes: dict[int, Outcome] = dict(judged or {})
    tasks = TaskCache()
    for prep in prepared:
        if prep.plan and prep.task is not None:
            tasks.seed(prep.plan[0][1], prep.task)
    pending = [i for i in range(len(prepared)) if i not in outcomes]
    while pending:
        parents: dict[int, int] = {}
        items: list[TrainItem] = []
        owner: list[int] = []  # the point index of each item
        busy: list[int] = []
        try:
            for i in pending:
                prep = prepared[i]
                if not force and (stored := reuse(prep, store)) is not None:
                    outcomes[i] = stored
                    continue
                if force:
                    status, (parent, point_items) = "claimed", open_parent(prep, store, sweep_id)
                else:
                    status, parent, point_items = claim_parent(prep, store, sweep_id)
                if status == "busy":
                    busy.append(i)
                    continue
                parents[i] = parent
                items += point_items
                owner += [i] * len(point_items)
            runs = train_items(items, store, force=force, progress=progress, executor=executor, tasks=tasks)
            for i, parent in parents.items():
                measured = measure_items(prepared[i], parent, store, force=force, progress=progress,
                                         executor=executor)
                outcomes[i] = finish(prepared[i], parent, [r for r, o in zip(runs, owner) if o == i] + measured,
                                     store)
        except BaseException as exc:
            close_on_error(store, list(parents.values()), exc)
            raise
        if parents:
            store.optimize()  # after the bulk writes: fresh planner statistics for queries over the runs
        elif busy:
            time.sleep(WAIT_S)
        pending = busy
    return [outcomes[i] for i in range(len(prepared))]


def run_experiment(
    name: str,
    *,
    store: Store,
    preset: str = "quick",
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    executor: GroupExecutor | None = None,
) -> Outcome:
    """Resolve, run (or judge again from its stored runs) experiment `name`: a one-point sweep
    without a sweep record. Bad input raises ConfigError before anything is stored.

    `executor` trains the runs' groups and runs the computations (`phenolab.execution.executors`;
    None: in this process)."""
    return run_prepared(prepare(name, preset, overrides), store=store, force=force, progress=progress,
                        executor=executor)


def run_prepared(prepared: Prepared, *, store: Store, force: bool = False, progress: ProgressFn | None = None,
                 executor: GroupExecutor | None = None) -> Outcome:
    """`run_experiment` on a config already resolved and planned (`runner.prepare`)."""
    return run_points([prepared], store, force=force, progress=progress, executor=executor)[0]
