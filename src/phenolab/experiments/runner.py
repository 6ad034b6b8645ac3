"""The experiment's side of a run: plan it, judge its stored runs, report.

`prepare` resolves a config and plans it (`Prepared`: the config, its training runs, its
computations, the first run's task); `judge` turns stored runs into summary, verdict and figures
under the runner's contract (name, source and failed-run reasons in every verdict); `finish`
stores them with the report page; `reuse` judges a ``done`` experiment run again from its stored
runs (`stored_runs`), so a fixed analysis shows at once. Training and measuring are the
execution room's (`phenolab.execution.orchestrator`), which calls these steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from phenolab import versioning
from phenolab.config import ConfigError, ExperimentSpec, RunSpec, config_hash
from phenolab.errors import error_line
from phenolab.experiments.base import Computation, Experiment, Planned, RunData, conditions_of, get_experiment
from phenolab.experiments.verdict import Verdict
from phenolab.probes.registry import check_requirements
from phenolab.report.html import render_run_page
from phenolab.store import Store, StoreError
from phenolab.tasks.base import Task
from phenolab.train.engines import build_run


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
    plan: Sequence[Planned | tuple[str, RunSpec]]
    computations: list[Computation]
    task: Task | None = field(default=None, compare=False, repr=False)  # the first run's, built by `plan_config`

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def prepare(name: str, preset: str = "quick", overrides: Mapping[str, Any] | None = None) -> Prepared:
    """Resolve experiment `name`'s config (defaults, preset, overrides) and plan it (`plan_config`)."""
    experiment = get_experiment(name)
    return plan_config(experiment, experiment.resolve(preset, overrides))


def plan_config(experiment: Experiment, cfg: Any) -> Prepared:
    """Plan a resolved config: its training runs and computations. The first run's task and model
    are built and the probes' requirements checked on them, so that a shape mismatch or a probe
    that cannot read the model is bad input (ConfigError) before the store is touched; the task
    is kept for training (`Prepared.task`), built once."""
    plan = experiment.plan(cfg)
    task = None
    if plan:
        first = plan[0][1]
        task, model = build_run(first)
        problems = check_requirements([p.name for p in first.probes], model, task)
        if problems:
            raise ConfigError(problems)
    return Prepared(experiment, cfg, plan, experiment.measure(cfg), task)


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
    wanted: list[tuple[str, RunSpec | None, str, str, str, tuple[str, ...]]]
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


def judge(prepared: Prepared, runs: list[RunData], *,
          draw: bool = True) -> tuple[dict[str, Any], Verdict, dict[str, Any]]:
    """The experiment's summary, verdict and figures (none unless `draw`) of `runs`, under the
    runner's contract.

    Every verdict carries the experiment's name and source, and fails naming the runs that did not
    finish (`failed_runs`). When some did not, an exception of ``analyze`` or ``verdict`` becomes a
    failed verdict naming those runs and the exception, and one of ``figures`` gives no figures
    (the verdict's details say why). With every run done, an exception is a bug and propagates.
    Each training run reaches the analysis with the typed condition its plan gave it (`Planned`)."""
    experiment, cfg = prepared.experiment, prepared.config
    conditions = conditions_of(prepared.plan)
    runs = [r if r.condition is not None or r.label not in conditions else replace(r, condition=conditions[r.label])
            for r in runs]
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


def failed_runs(runs: list[RunData]) -> str:
    """A verdict failure reason naming runs that did not finish, or '' when all are done."""
    bad = [f"{r.label}: {r.status} ({r.error})" for r in runs if r.status != "done"]
    return "runs did not finish: " + "; ".join(bad) if bad else ""
