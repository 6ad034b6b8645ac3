"""Run an experiment end to end: plan, train each run into the store, analyze, judge, report.

The experiment is a parent run (kind ``experiment``) whose training runs (kind ``train``) are
its children. A parent whose config hash is already ``done`` is reused unless ``force``; so is
a training run, which lets an interrupted experiment resume without redoing finished seeds.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from phenolab.config import RunSpec, config_hash
from phenolab.experiments.base import Experiment, RunData, get_experiment
from phenolab.models import build_model
from phenolab.report.html import render_run_page
from phenolab.store import Store
from phenolab.tasks import Task, make_task
from phenolab.train import Recorder, generator, train

ProgressFn = Callable[[str, int, int, float], None]


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


def run_experiment(
    name: str,
    *,
    store: Store,
    preset: str = "quick",
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> Outcome:
    """Resolve, run (or reuse) and judge experiment `name`; bad input raises ConfigError first."""
    experiment = get_experiment(name)
    cfg = experiment.resolve(preset, overrides)
    plan = experiment.plan(cfg)
    if plan:  # build the first run's task and model before anything is stored: shape errors are bad input
        _build(plan[0][1])
    digest = config_hash(cfg)
    if not force:
        done = store.find_done("experiment", name, digest)
        if done is not None:
            run = store.get_run(done)
            return Outcome(done, name, run["verdict"] or {}, run["summary"] or {}, reused=True)

    parent = store.create_run(kind="experiment", name=name, config=cfg.model_dump(mode="json"),
                              config_hash=digest, label=cfg.preset)
    try:
        runs = [_train_one(experiment, label, spec, store, parent, force, progress) for label, spec in plan]
        summary = experiment.analyze(cfg, runs)
        verdict = experiment.verdict(cfg, summary)
        summary = {**summary, "runs": {r.label: r.run_id for r in runs}}
        figures = experiment.figures(cfg, runs, summary)
        saved = {caption: store.save_figure(parent, caption, fig) for caption, fig in figures.items()}
        store.finish_run(parent, "done", summary=summary, verdict=verdict.to_dict())
        store.save_text(parent, "report.html", render_run_page(
            store.get_run(parent), verdict=verdict.to_dict(), figures=saved,
            children=[store.get_run(r.run_id) for r in runs]))
    except KeyboardInterrupt:
        store.finish_run(parent, "interrupted", error="interrupted by the user (KeyboardInterrupt)")
        raise
    except Exception as exc:
        store.finish_run(parent, "failed", error=_one_line(exc))
        raise
    return Outcome(parent, name, verdict.to_dict(), summary, reused=False)


def _train_one(experiment: Experiment, label: str, spec: RunSpec, store: Store, parent: int,
               force: bool, progress: ProgressFn | None) -> RunData:
    digest = config_hash(spec)
    if not force:
        done = store.find_done("train", experiment.name, digest)
        if done is not None:
            return RunData(label, done, spec, "done", None, store)
    task, model = _build(spec)
    callback = (lambda step, total, loss: progress(label, step, total, loss)) if progress else None
    with Recorder(store, experiment.name, spec, kind="train", parent_id=parent, label=label) as rec:
        result = train(model, task, spec.train, probes=spec.probes, recorder=rec,
                       generator=generator(spec.seed, "batches"), progress=callback)
        error = None if result.status == "done" else result.reason
        rec.close(result.status, error=error,
                  summary={"final_loss": result.final_loss, "steps": result.steps, "wall_s": result.wall_s})
    return RunData(label, rec.run_id, spec, result.status, error, store)


def _build(spec: RunSpec) -> tuple[Task, nn.Module]:
    dtype = torch.float64 if spec.train.dtype == "float64" else torch.float32
    task = make_task(spec.data, spec.seed, dtype=dtype)
    model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"), dtype=dtype)
    return task, model


def failed_runs(runs: list[RunData]) -> str:
    """A verdict failure reason naming runs that did not finish, or '' when all are done."""
    bad = [f"{r.label}: {r.status} ({r.error})" for r in runs if r.status != "done"]
    return "runs did not finish: " + "; ".join(bad) if bad else ""


def _one_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()

