"""Run an experiment end to end: plan, train its runs into the store, analyze, judge, report.

The experiment is a parent run (kind ``experiment``) whose training runs (kind ``train``) are
its children. A training or measurement run is reused when a ``done`` one with its config hash
was stored by the current code (`phenolab.versioning`), which lets an interrupted experiment
resume without redoing finished runs. Analysis, verdict and figures are never reused: a parent
whose config hash is already ``done`` is judged again from its stored runs (`reuse`), so a fixed
analysis shows at once; only when one of those runs is missing, failed or of older code does the
experiment run again (as a new parent, reusing what is current). ``force`` redoes everything.
`prepare`, `open_parent`, `reuse` and `finish` are the steps a sweep reuses.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from phenolab import versioning
from phenolab.config import ConfigError, ExperimentSpec, RunSpec, config_hash
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
from phenolab.probes.registry import check_requirements
from phenolab.report.html import render_run_page
from phenolab.store import Store, StoreError


@dataclass(frozen=True)
class Outcome:
    """The stored experiment run and its verdict (as a dict, the way the store keeps it).

    `reused`: no training or measurement was needed; the verdict was computed again from the
    stored runs of an earlier experiment run with this config hash (`run_id` is that run)."""

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
        first = plan[0][1]
        task, model = build(first)
        problems = check_requirements([p.name for p in first.probes], model, task)
        if problems:
            raise ConfigError(problems)
    return Prepared(experiment, cfg, plan, experiment.measure(cfg))


def reuse(prepared: Prepared, store: Store) -> Outcome | None:
    """Judge a ``done`` experiment run with this config hash again from its stored runs, if there is
    one whose runs are all current (`stored_runs`): analysis, verdict, figures and report are
    recomputed by today's code and replace the stored ones. None: run the experiment."""
    done = store.find_done("experiment", prepared.experiment.name, prepared.config_hash)
    if done is None:
        return None
    runs = stored_runs(prepared, done, store)
    if runs is None:
        return None
    return finish(prepared, done, runs, store, reused=True)


def stored_runs(prepared: Prepared, parent: int, store: Store) -> list[RunData] | None:
    """The runs experiment run `parent` was judged on (its summary's ``runs``: label -> run id), in
    the order `finish` takes them, or None if one is missing or no longer current: a planned
    run whose label is not there, or whose stored run has another kind, name or config hash,
    was stored by other code (`phenolab.versioning`; NULL before schema 3), or did not end
    ``done`` (a training run that diverged counts as its result)."""
    listed = (store.get_run(parent)["summary"] or {}).get("runs")
    if not isinstance(listed, dict):
        return None
    name = prepared.experiment.name
    train_version = versioning.code_version()
    wanted = [(label, spec, "train", config_hash(spec), train_version, ("done", "diverged"))
              for label, spec in prepared.plan]
    wanted += [(c.label, None, "measure", c.config_hash, versioning.measure_version(c.compute), ("done",))
               for c in prepared.computations]
    out = []
    for label, spec, kind, digest, version, ended in wanted:
        run_id = listed.get(label)
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            return None
        try:
            row = store.get_run(run_id)
        except StoreError:
            return None
        if ((row["kind"], row["name"], row["config_hash"], row["code_version"]) != (kind, name, digest, version)
                or row["status"] not in ended):
            return None
        out.append(RunData(label, run_id, spec, row["status"], row["error"], store))
    return out


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
    versions = [versioning.measure_version(comp.compute) for comp in comps]
    out: dict[int, RunData] = {}
    todo = []
    for k, comp in enumerate(comps):
        done = None if force else store.find_done("measure", name, comp.config_hash, versions[k])
        if done is not None:
            out[k] = RunData(comp.label, done, None, "done", None, store)
        else:
            todo.append(k)
    open_: dict[int, int] = {}

    def on_start(j: int) -> None:
        comp = comps[todo[j]]
        open_[j] = store.create_run(kind="measure", name=name, config=comp.config, config_hash=comp.config_hash,
                                    parent_id=parent, label=comp.label, code_version=versions[todo[j]])

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


def finish(prepared: Prepared, parent: int, runs: list[RunData], store: Store, *, reused: bool = False) -> Outcome:
    """Analyze the stored runs, judge (`judge`), save figures and the report, and close the parent run.

    `reused`: the parent is an earlier ``done`` run judged again (`reuse`); its summary, verdict,
    figures and report are replaced, its status and times kept."""
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
    if reused:
        store.update_results(parent, summary=summary, verdict=verdict.to_dict())
    else:
        store.finish_run(parent, "done", summary=summary, verdict=verdict.to_dict())
    store.save_text(parent, "report.html", render_run_page(
        store.get_run(parent), verdict=verdict.to_dict(), figures=saved,
        children=[store.get_run(i) for i in dict.fromkeys(r.run_id for r in runs)]))
    return Outcome(parent, prepared.experiment.name, verdict.to_dict(), summary, reused=reused)


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
    """Resolve, run (or reuse the stored runs of) and judge experiment `name`; bad input raises
    ConfigError first. The verdict is always computed by the current analysis (`reuse`).

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
