"""The catalog's contract, over every registered experiment.

Every entry: its presets (quick, full, smoke) resolve; a smoke run (the smallest run of the whole
pipeline: plan, training or measurement, analysis, verdict, figures) is deterministic; runs that
all failed give a failed verdict naming them, never an exception; every field of its typed
``check`` block reaches the verdict; its resolved config round-trips through the store; and the
README's catalog table is the registry's. The smoke runs are shared by the tests (one per
experiment, plus one more for the determinism test), so the file stays a matter of seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from phenolab.config import ConfigError, RunSpec, Spec, config_hash, parse_overrides, validate
from phenolab.execution.orchestrator import open_parent, run_experiment
from phenolab.experiments import catalog_table, experiments, get_experiment
from phenolab.experiments.base import Experiment, RunData, register
from phenolab.experiments.catalog import readme_block
from phenolab.experiments.runner import Outcome, Prepared, finish, judge, prepare
from phenolab.store import Store

NAMES = [e.name for e in experiments()]
PRESETS = ("quick", "full", "smoke")
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """``smoke(name)`` -> (store path, Outcome) of the experiment's smoke run, run once per module."""
    cache: dict[str, tuple[Path, Outcome]] = {}

    def get(name: str) -> tuple[Path, Outcome]:
        if name not in cache:
            path = tmp_path_factory.mktemp(name) / "s.sqlite"
            with Store(path) as st:
                cache[name] = (path, run_experiment(name, store=st, preset="smoke"))
        return cache[name]

    return get


def stored_runs(prepared: Prepared, outcome: Outcome, store: Store) -> list[RunData]:
    """The experiment's runs as `finish` saw them (training runs, then measurements), from the store."""
    specs = dict(prepared.plan)
    out = []
    for label, run_id in outcome.summary["runs"].items():
        row = store.get_run(run_id)
        out.append(RunData(label, run_id, specs.get(label), row["status"], row["error"], store))
    return out


def canonical(value: Any) -> str:
    """JSON text of a stored dict, NaN included, keys sorted: equal iff every number is identical."""
    return json.dumps(value, sort_keys=True, default=repr)


# ------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("name", NAMES)
def test_presets_resolve_and_smoke_is_no_bigger_than_quick(name):
    e = get_experiment(name)
    cfgs = {}
    for preset in PRESETS:
        cfgs[preset] = e.resolve(preset)
        assert cfgs[preset].experiment == name and cfgs[preset].preset == preset and cfgs[preset].seeds
    smoke, quick = cfgs["smoke"], cfgs["quick"]
    assert len(e.plan(smoke)) <= len(e.plan(quick)) and len(e.measure(smoke)) <= len(e.measure(quick))
    assert e.plan(smoke) or e.measure(smoke), "the smoke preset must run something"


def test_register_requires_a_smoke_preset():
    e = get_experiment(NAMES[0])
    with pytest.raises(ValueError, match="needs a 'smoke' preset"):
        register(replace(e, name="contract-no-smoke", presets={"quick": {}, "full": {}}))
    assert "contract-no-smoke" not in [x.name for x in experiments()]


# ------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_is_deterministic(name, smoke, tmp_path):
    path, first = smoke(name)
    with Store(tmp_path / "s.sqlite") as st:
        second = run_experiment(name, store=st, preset="smoke")
        again = st.get_run(second.run_id)
    with Store(path, readonly=True) as st:
        stored = st.get_run(first.run_id)
        figures = [a for a in st.artifacts(first.run_id) if a["kind"] == "figure"]
    assert not first.reused and not second.reused
    assert stored["status"] == again["status"] == "done"
    assert canonical(stored["verdict"]) == canonical(again["verdict"]), "the smoke verdicts differ"
    summary = {k: v for k, v in stored["summary"].items() if k != "runs"}
    assert canonical(summary) == canonical({k: v for k, v in again["summary"].items() if k != "runs"})
    assert stored["verdict"]["experiment"] == name and stored["verdict"]["source"] == get_experiment(name).source
    assert figures, "the smoke run drew no figure: it does not exercise the whole pipeline"


# ----------------------------------------------------------------------------------- failed runs
def _failed_runs(prepared: Prepared, parent: int, store: Store) -> list[RunData]:
    """Every planned run and computation stored ``failed`` with an error naming it."""
    name, runs = prepared.experiment.name, []
    for label, spec in prepared.plan:
        error = f"RuntimeError: contract failure of {label}"
        run = store.create_run(kind="train", name=name, config=spec.model_dump(mode="json"),
                               config_hash=config_hash(spec), parent_id=parent, label=label)
        store.finish_run(run, "failed", error=error)
        runs.append(RunData(label, run, spec, "failed", error, store))
    for comp in prepared.computations:
        error = f"RuntimeError: contract failure of {comp.label}"
        run = store.create_run(kind="measure", name=name, config=comp.config, config_hash=comp.config_hash,
                               parent_id=parent, label=comp.label)
        store.finish_run(run, "failed", error=error)
        runs.append(RunData(comp.label, run, None, "failed", error, store))
    return runs


@pytest.mark.parametrize("name", NAMES)
def test_all_failed_runs_give_a_failed_verdict_naming_them(name, tmp_path):
    prepared = prepare(name, "smoke")
    with Store(tmp_path / "s.sqlite") as st:
        parent, _ = open_parent(prepared, st)
        runs = _failed_runs(prepared, parent, st)
        outcome = finish(prepared, parent, runs, st)
        row = st.get_run(parent)
    verdict = outcome.verdict
    assert not outcome.passed and row["status"] == "done" and row["verdict"] == verdict
    assert verdict["experiment"] == name and verdict["source"] == prepared.experiment.source
    assert "runs did not finish" in verdict["reason"]
    for run in runs:
        assert f"{run.label}: failed (RuntimeError: contract failure of {run.label})" in verdict["reason"]


@pytest.mark.parametrize("name", NAMES)
def test_one_failed_run_among_done_ones_fails_the_verdict_naming_it(name, smoke):
    path, outcome = smoke(name)
    prepared = prepare(name, "smoke")
    with Store(path, readonly=True) as st:
        runs = stored_runs(prepared, outcome, st)
        runs[0] = replace(runs[0], status="failed", error="RuntimeError: contract")
        _, verdict, _ = judge(prepared, runs)
    assert not verdict.passed
    assert f"{runs[0].label}: failed (RuntimeError: contract)" in verdict.reason


def test_an_analysis_that_raises_on_failed_runs_gives_a_failed_verdict(tmp_path):
    e = get_experiment(NAMES[0])

    def broken(cfg, runs):
        raise KeyError("no data")

    prepared = prepare(e.name, "smoke")
    prepared = replace(prepared, experiment=replace(e, analyze=broken, figures=broken))
    with Store(tmp_path / "s.sqlite") as st:
        parent, _ = open_parent(prepared, st)
        outcome = finish(prepared, parent, _failed_runs(prepared, parent, st), st)
    assert not outcome.passed and "runs did not finish" in outcome.verdict["reason"]
    assert "the analysis raised KeyError: 'no data'" in outcome.verdict["reason"]
    with pytest.raises(KeyError):  # with every run done an exception is a bug, not a verdict
        judge(prepared, [])


# ------------------------------------------------------------------------------------ thresholds
def _candidates(value: Any) -> list[Any]:
    """Other values of a check field, to try one at a time until one validates."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        out: list[Any] = [value + 1, value - 1, 2 * value, 0, 1]
    elif isinstance(value, float):
        out = [2 * value if value else 1.0, value / 2, value + 1, value - 1, -value, 0.5, 0.25]
    elif isinstance(value, list):
        out = [value[:-1], value[1:], value + value[-1:]] if value else []
    else:
        return []
    return [v for v in dict.fromkeys(map(json.dumps, out)) if json.loads(v) != value]


def _plan_hashes(prepared: Prepared) -> list[str]:
    return [config_hash(spec) for _, spec in prepared.plan] + [c.config_hash for c in prepared.computations]


def _check_class(e: Experiment) -> type[Spec] | None:
    ann = e.config.model_fields["check"].annotation
    return ann if isinstance(ann, type) and issubclass(ann, Spec) else None


def _how_used(before: dict[str, Any], after: dict[str, Any], new: Any) -> str:
    """How a changed check field shows in the verdict: ``threshold`` (some check's threshold moved to
    the new value), ``check`` (a check's name, measured number or outcome changed), ``details``,
    or ``""`` (not at all)."""
    if canonical(after) == canonical(before):
        return ""
    olds, news = before["checks"], after["checks"]
    if isinstance(new, (int, float)) and not isinstance(new, bool) and len(olds) == len(news) and any(
            a["threshold"] != b["threshold"] and math.isclose(b["threshold"], new) for a, b in zip(olds, news)):
        return "threshold"
    return "check" if canonical(olds) != canonical(news) else "details"


@pytest.mark.parametrize("name", NAMES)
def test_every_check_field_reaches_the_verdict(name, smoke):
    """Change one ``check.<field>`` by override and judge the stored smoke runs again (no training):
    the verdict's checks change (a threshold moves to the new value, or an analysis threshold
    changes a check's number or text). A field that changes the runs themselves (their config
    hashes) is used by the measurement instead."""
    e = get_experiment(name)
    cls = _check_class(e)
    assert cls is not None, f"{name}: its check block is an untyped dict; thresholds belong in a typed Spec"
    path, outcome = smoke(name)
    base = prepare(name, "smoke")
    used: dict[str, str] = {}
    with Store(path, readonly=True) as st:
        runs = stored_runs(base, outcome, st)
        before = judge(base, runs, draw=False)[1].to_dict()
        assert canonical(before) == canonical(outcome.verdict)  # judging the stored runs again is the run's verdict
        for field in cls.model_fields:
            used[field] = ""
            for text in _candidates(getattr(base.config.check, field)):
                try:
                    changed = prepare(name, "smoke", parse_overrides([f"check.{field}={text}"]))
                except ConfigError:
                    continue
                assert getattr(changed.config.check, field) == json.loads(text)
                if _plan_hashes(changed) != _plan_hashes(base):
                    used[field] = "measurement"
                    break
                how = _how_used(before, judge(changed, runs, draw=False)[1].to_dict(), json.loads(text))
                if how in ("threshold", "check"):
                    used[field] = how
                    break
                used[field] = used[field] or how
    unused = [f for f, how in used.items() if how in ("", "details")]
    assert not unused, f"{name}: check fields that change no check of the verdict: {unused} ({used})"


# --------------------------------------------------------------------------------- config round trip
@pytest.mark.parametrize("name", NAMES)
def test_resolved_config_round_trips_through_the_store(name, smoke):
    e = get_experiment(name)
    path, outcome = smoke(name)
    prepared = prepare(name, "smoke")
    with Store(path, readonly=True) as st:
        row = st.get_run(outcome.run_id)
        children = st.children(outcome.run_id)
    back = validate(e.config, row["config"])
    assert back == prepared.config
    assert config_hash(back) == row["config_hash"] == prepared.config_hash
    specs = dict(prepared.plan)
    trained = [c for c in children if c["kind"] == "train"]
    assert len(trained) == len(specs)
    for child in trained:
        spec = validate(RunSpec, child["config"])
        assert spec == specs[child["label"]] and config_hash(spec) == child["config_hash"]


# --------------------------------------------------------------------------------------- README
def test_readme_catalog_table_is_generated_from_the_registry():
    assert readme_block(README.read_text()) == catalog_table(), (
        "README.md's catalog table is out of date with the registry; regenerate it with "
        "`PYTHONPATH=src python -m phenolab.experiments.catalog README.md`")
