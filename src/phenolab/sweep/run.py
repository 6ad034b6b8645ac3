"""Run a sweep: every point an experiment run, all their training runs batched, trained by an executor.

The sweep is validated whole (`expand`) before anything is stored. It is recorded as a run of
kind ``sweep`` (config: the sweep spec; config hash: the sweep id), and each point's experiment
run carries the sweep id. All points' training runs go through one `train_items` call, so runs
of the same shape from different points train together as ensembles. After an interruption the
same sweep resumes: finished training and measurement runs are found by config hash and code
version (`phenolab.versioning`) and reused. Verdicts are never reused: a point whose experiment
run is ``done`` is judged again from its stored runs (`runner.reuse`), and a finished sweep whose
points all are gets its summary rewritten rather than a new sweep run.
The groups train where the executor puts them (`phenolab.execution.executors`: this process, or a
pool of worker processes); only this process writes the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from phenolab.execution.groups import WAIT_S, GroupExecutor, ProgressFn
from phenolab.execution.orchestrator import close_on_error, run_points
from phenolab.experiments.base import get_experiment
from phenolab.experiments.runner import Outcome, plan_config, reuse
from phenolab.store import Store
from phenolab.sweep.spec import SweepPoint, SweepSpec, expand, sweep_id


@dataclass(frozen=True)
class SweepOutcome:
    """The sweep's own run, its id, and each point with its experiment outcome; `reused`: an
    earlier finished sweep run whose points were all judged again without training."""

    sweep_id: str
    run_id: int
    points: list[tuple[SweepPoint, Outcome]]
    reused: bool = False


def sweep_record(spec: SweepSpec, points: list[SweepPoint]) -> dict[str, Any]:
    """What the store keeps as the sweep's config: the spec and the expanded axis values."""
    return {**spec.model_dump(mode="json"),
            "axis_values": {a.path: list(a.values) for a in spec.parsed_axes()},
            "n_points": len(points)}


def run_sweep(spec: SweepSpec, *, store: Store, force: bool = False, progress: ProgressFn | None = None,
              executor: GroupExecutor | None = None) -> SweepOutcome:
    """Run (or resume) every point of `spec` (`phenolab.execution.orchestrator.run_points`); bad axes
    raise ConfigError before anything is stored. Each point's config is resolved once, by `expand`.

    `executor` trains the groups (`phenolab.execution.executors.make_executor`; None: in this
    process, one after another)."""
    points = expand(spec)
    prepared = [plan_config(get_experiment(spec.experiment), p.config) for p in points]
    sid = sweep_id(spec)
    while True:
        outcomes: dict[int, Outcome] = {}
        if force:
            record = store.create_run(kind="sweep", name=spec.experiment, config=sweep_record(spec, points),
                                      config_hash=sid, sweep_id=sid, label=spec.name)
            break
        # the same sweep run by another live driver: wait for it, then judge its points again
        while store.running_elsewhere("sweep", spec.experiment, sid) is not None:
            time.sleep(WAIT_S)
        for i, prep in enumerate(prepared):  # points already done: judged again from their stored runs
            if (stored := reuse(prep, store)) is not None:
                outcomes[i] = stored
        done = store.find_done("sweep", spec.experiment, sid)
        if done is not None and len(outcomes) == len(points):
            store.update_results(done, summary=_sweep_summary(points, outcomes), verdict=None)
            return SweepOutcome(sid, done, [(p, outcomes[p.index]) for p in points], reused=True)
        status, record = store.claim_run(kind="sweep", name=spec.experiment, config=sweep_record(spec, points),
                                         config_hash=sid, code_version=None, sweep_id=sid, label=spec.name,
                                         reuse_done=False)
        if status != "busy":  # busy: another driver claimed it a moment ago; wait for it
            break
    try:
        results = run_points(prepared, store, force=force, progress=progress, executor=executor, sweep_id=sid,
                             judged=outcomes)
        outcomes = dict(enumerate(results))
        store.finish_run(record, "done", summary=_sweep_summary(points, outcomes))
    except BaseException as exc:
        close_on_error(store, [record], exc)
        raise
    return SweepOutcome(sid, record, [(p, outcomes[p.index]) for p in points])


def _sweep_summary(points: list[SweepPoint], outcomes: dict[int, Outcome]) -> dict[str, Any]:
    return {"points": [_point_summary(p, outcomes[p.index]) for p in points]}


def _point_summary(point: SweepPoint, outcome: Outcome) -> dict[str, Any]:
    return {"index": point.index, "values": point.values, "run_id": outcome.run_id, "passed": outcome.passed,
            "measured": {c["name"]: c.get("measured") for c in outcome.verdict.get("checks", [])},
            "checks": outcome.verdict.get("checks", [])}
