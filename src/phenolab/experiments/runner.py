"""Run an experiment end to end: plan, train its runs into the store, analyze, judge, report.

The experiment is a parent run (kind ``experiment``) whose training runs (kind ``train``) are
its children. A parent whose config hash is already ``done`` is reused unless ``force``; so is
a training run (`training.train_items`), which lets an interrupted experiment resume without
redoing finished runs. `prepare`, `open_parent` and `finish` are the steps a sweep reuses.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from phenolab.config import ExperimentSpec, RunSpec, config_hash
from phenolab.experiments.base import (
    RESULT_ARTIFACT,
    Computation,
    Experiment,
    RunData,
    compute_safely,
    get_experiment,
)
from phenolab.experiments.training import GroupExecutor, ProgressFn, TrainItem, build, error_line, train_items
from phenolab.experiments.verdict import Verdict
from phenolab.report.html import render_run_page
from phenolab.store import Store


@dataclass(frozen=True)
class Outcome:
    """The stored experiment run and its verdict (as a dict, the way the store keeps it)."""

    run_id: int
    name: str
    verdict: dict[str, Any]
    summary: dict[str, Any]
    reused: bool

    @property
    def passed(self) -> bool:
        return bool(self.verdict.get("passed"))


@dataclass(frozen=True)
class Prepared:
    """A resolved experiment config and its planned training runs, checked before anything is stored."""

    experiment: Experiment
    config: ExperimentSpec
    plan: list[tuple[str, RunSpec]]
    computations: list[Computation]

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def prepare(name: str, preset: str = "quick", overrides: Mapping[str, Any] | None = None) -> Prepared:
    """Resolve the config and plan the runs; the first run's task and model are built, so that a
    shape mismatch is bad input (ConfigError) before the store is touched."""
    experiment = get_experiment(name)
    cfg = experiment.resolve(preset, overrides)
    plan = experiment.plan(cfg)
    if plan:
        build(plan[0][1])
    return Prepared(experiment, cfg, plan, experiment.measure(cfg))


def reuse(prepared: Prepared, store: Store) -> Outcome | None:
    """The stored outcome of a ``done`` experiment run with this config hash, if there is one."""
    done = store.find_done("experiment", prepared.experiment.name, prepared.config_hash)
    if done is None:
        return None
    run = store.get_run(done)
    return Outcome(done, prepared.experiment.name, run["verdict"] or {}, run["summary"] or {}, reused=True)


def open_parent(prepared: Prepared, store: Store, sweep_id: str | None = None) -> tuple[int, list[TrainItem]]:
    """Create the parent run and the training items that hang from it."""
    parent = store.create_run(kind="experiment", name=prepared.experiment.name,
                              config=prepared.config.model_dump(mode="json"), config_hash=prepared.config_hash,
                              label=prepared.config.preset, sweep_id=sweep_id)
    items = [TrainItem(prepared.experiment.name, label, spec, parent) for label, spec in prepared.plan]
    return parent, items


def measure_items(prepared: Prepared, parent: int, store: Store, *, force: bool = False,
                  progress: ProgressFn | None = None, executor: GroupExecutor | None = None) -> list[RunData]:
    """Run (or reuse) the experiment's computations, each stored as a ``measure`` run under `parent`.

    `executor` runs them (its workers, in parallel; None: here, one after another). A computation
    that raises is stored ``failed`` with the error and the others go on (the verdict then names
    it, `failed_runs`); Ctrl-C stores the ones in flight ``interrupted`` and re-raises."""
    name, comps = prepared.experiment.name, prepared.computations
    out: dict[int, RunData] = {}
    todo = []
    for k, comp in enumerate(comps):
        done = None if force else store.find_done("measure", name, comp.config_hash)
        if done is not None:
            out[k] = RunData(comp.label, done, None, "done", None, store)
        else:
            todo.append(k)
    open_: dict[int, int] = {}

    def on_start(j: int) -> None:
        comp = comps[todo[j]]
        open_[j] = store.create_run(kind="measure", name=name, config=comp.config, config_hash=comp.config_hash,
                                    parent_id=parent, label=comp.label)

    def on_done(j: int, outcome: Any) -> None:
        run, comp = open_.pop(j), comps[todo[j]]
        status, value = outcome if isinstance(outcome, tuple) else ("error", outcome.reason)
        if status == "ok":
            arrays = {key: np.asarray(v) for key, v in value.items()}
            store.save_artifact(run, RESULT_ARTIFACT, arrays)
            scalars = {key: float(a) for key, a in arrays.items() if a.ndim == 0 and a.dtype.kind in "biuf"}
            store.finish_run(run, "done", summary=scalars)
            out[todo[j]] = RunData(comp.label, run, None, "done", None, store)
        else:
            store.finish_run(run, "failed", error=value)
            out[todo[j]] = RunData(comp.label, run, None, "failed", value, store)
        if progress is not None:
            progress("measuring", len(out), len(comps), math.nan)

    calls = [(compute_safely, (comps[k].compute, dict(comps[k].params)), comps[k].label) for k in todo]
    try:
        if executor is None:
            for j, (fn, args, _) in enumerate(calls):
                on_start(j)
                on_done(j, fn(*args))
        elif calls:
            executor.run_calls(calls, on_start=on_start, on_done=on_done)
    except BaseException as exc:
        for run in open_.values():
            store.finish_run(run, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                             error=error_line(exc))
        raise
    return [out[k] for k in range(len(comps))]


def judge(prepared: Prepared, runs: list[RunData], *,
          draw: bool = True) -> tuple[dict[str, Any], Verdict, dict[str, Any]]:
    """The experiment's summary, verdict and figures (none unless `draw`) of `runs`, under the
    runner's contract.

    Every verdict carries the experiment's name and source, and fails naming the runs that did not
    finish (`failed_runs`). When some did not, an exception of ``analyze`` or ``verdict`` becomes a
    failed verdict naming those runs and the exception, and one of ``figures`` gives no figures
    (the verdict's details say why). With every run done, an exception is a bug and propagates."""
    experiment, cfg = prepared.experiment, prepared.config
    failure = failed_runs(runs)
    labels = {"runs": {r.label: r.run_id for r in runs}}
    try:
        summary = experiment.analyze(cfg, runs)
        verdict = experiment.verdict(cfg, summary)
    except Exception as exc:
        if not failure:
            raise
        error = f"{failure}; the analysis raised {error_line(exc)}"
        summary, verdict = {"failure": error}, Verdict(experiment.name, (), failure=error)
    if failure and failure not in verdict.failure:
        verdict = replace(verdict, failure=f"{verdict.failure}; {failure}" if verdict.failure else failure)
    verdict = replace(verdict, experiment=experiment.name, source=experiment.source)
    summary = {**summary, **labels}
    if not draw:
        return summary, verdict, {}
    try:
        figures = experiment.figures(cfg, runs, summary)
    except Exception as exc:
        if not failure:
            raise
        figures = {}
        verdict = replace(verdict, details={**verdict.details, "figures": f"none drawn: {error_line(exc)}"})
    return summary, verdict, figures


def finish(prepared: Prepared, parent: int, runs: list[RunData], store: Store) -> Outcome:
    """Analyze the stored runs, judge (`judge`), save figures and the report, and close the parent run."""
    summary, verdict, figures = judge(prepared, runs)
    saved, unsaved = {}, []
    for caption, fig in figures.items():
        try:  # matplotlib draws on save: a figure of runs that failed (no data) may raise only here
            saved[caption] = store.save_figure(parent, caption, fig)
        except Exception as exc:
            if not failed_runs(runs):
                raise
            unsaved.append(f"{caption}: {error_line(exc)}")
    if unsaved:
        verdict = replace(verdict, details={**verdict.details, "figures not drawn": unsaved})
    store.finish_run(parent, "done", summary=summary, verdict=verdict.to_dict())
    store.save_text(parent, "report.html", render_run_page(
        store.get_run(parent), verdict=verdict.to_dict(), figures=saved,
        children=[store.get_run(i) for i in dict.fromkeys(r.run_id for r in runs)]))
    return Outcome(parent, prepared.experiment.name, verdict.to_dict(), summary, reused=False)


def close_on_error(store: Store, parents: list[int], exc: BaseException) -> None:
    """Mark parent runs that did not finish: ``interrupted`` on Ctrl-C, else ``failed`` with the error."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    error = ("interrupted by the user (KeyboardInterrupt)" if status == "interrupted"
             else traceback.format_exception_only(type(exc), exc)[-1].strip())
    for parent in parents:
        if store.get_run(parent)["status"] == "running":
            store.finish_run(parent, status, error=error)


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
    """Resolve, run (or reuse) and judge experiment `name`; bad input raises ConfigError first.

    `executor` trains the runs' ensemble groups (`phenolab.sweep.executors`; None: in this process)."""
    prepared = prepare(name, preset, overrides)
    if not force and (outcome := reuse(prepared, store)) is not None:
        return outcome
    parent, items = open_parent(prepared, store)
    try:
        runs = train_items(items, store, force=force, progress=progress, executor=executor)
        runs += measure_items(prepared, parent, store, force=force, progress=progress, executor=executor)
        outcome = finish(prepared, parent, runs, store)
    except BaseException as exc:
        close_on_error(store, [parent], exc)
        raise
    store.optimize()  # after the bulk writes: fresh planner statistics for queries over the runs
    return outcome


def failed_runs(runs: list[RunData]) -> str:
    """A verdict failure reason naming runs that did not finish, or '' when all are done."""
    bad = [f"{r.label}: {r.status} ({r.error})" for r in runs if r.status != "done"]
    return "runs did not finish: " + "; ".join(bad) if bad else ""
