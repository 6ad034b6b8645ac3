"""No stale verdicts: a stored experiment is judged again by today's analysis from its stored runs,
and a training or measurement run stored by other code is not reused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from phenolab import versioning
from phenolab.config import ExperimentSpec
from phenolab.execution import run_experiment
from phenolab.execution.measure import measure_items
from phenolab.execution.orchestrator import open_parent
from phenolab.experiments import base
from phenolab.experiments.base import Computation, Experiment, get_experiment, no_training
from phenolab.experiments.runner import Prepared, finish, reuse
from phenolab.experiments.verdict import Check, Verdict
from phenolab.store import Store
from phenolab.sweep import sweep_from_cli
from phenolab.sweep.run import run_sweep

TINY = {"seeds": [0, 1], "train": {"steps": 20}}


@pytest.fixture()
def store(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        yield st


def fixed_verdict(cfg, summary):
    """What a fixed verdict function returns: always passes, with a check nobody stored before."""
    return Verdict("f-principle", (Check("fixed check", 1.0, ">", 0.0),), source="test")


def patch_verdict(monkeypatch, verdict=fixed_verdict):
    exp = get_experiment("f-principle")
    monkeypatch.setitem(base._REGISTRY, "f-principle", dataclasses.replace(exp, verdict=verdict))


def train_ids(store):
    return sorted(r["id"] for r in store.list_runs(kind="train"))


def test_a_fixed_analysis_is_not_masked_by_a_stored_verdict(store, monkeypatch):
    first = run_experiment("f-principle", store=store, overrides=TINY)
    assert not first.passed and not first.reused  # 20 steps: too few to show the effect
    trained = train_ids(store)
    children = first.summary["runs"]
    assert len(trained) == 2 and sorted(children.values()) == trained

    patch_verdict(monkeypatch)
    again = run_experiment("f-principle", store=store, overrides=TINY)
    assert again.reused and again.run_id == first.run_id
    assert again.passed and [c["name"] for c in again.verdict["checks"]] == ["fixed check"]
    assert again.summary["runs"] == children  # judged on the same runs
    assert train_ids(store) == trained  # nothing trained again
    assert len(store.list_runs(kind="experiment")) == 1
    stored = store.get_run(first.run_id)
    assert stored["verdict"] == again.verdict and stored["passed"] is True and stored["status"] == "done"
    assert stored["summary"]["runs"] == children
    assert store.summaries([first.run_id])[first.run_id]["checks"][0]["name"] == "fixed check"
    assert "fixed check" in (store.run_dir(first.run_id) / "report.html").read_text()


def test_a_run_of_other_code_is_not_reused(store, monkeypatch):
    first = run_experiment("f-principle", store=store, overrides=TINY)
    old = train_ids(store)
    assert {store.get_run(i)["code_version"] for i in old} == {versioning.code_version()}

    monkeypatch.setattr(versioning, "code_version", lambda: "0123456789abcdef")
    again = run_experiment("f-principle", store=store, overrides=TINY)
    assert not again.reused and again.run_id != first.run_id
    new = sorted(set(train_ids(store)) - set(old))
    assert len(new) == 2 and sorted(again.summary["runs"].values()) == new
    assert {store.get_run(i)["code_version"] for i in new} == {"0123456789abcdef"}
    # and now the new code's runs are current: judged again, nothing trained
    third = run_experiment("f-principle", store=store, overrides=TINY)
    assert third.reused and third.run_id == again.run_id and len(train_ids(store)) == 4


def test_a_missing_or_failed_child_runs_the_experiment_again(store):
    first = run_experiment("f-principle", store=store, overrides=TINY)
    victim = first.summary["runs"]["seed=0"]
    store.update_results(first.run_id, summary={**first.summary, "runs": {"seed=1": first.summary["runs"]["seed=1"]}},
                         verdict=first.verdict)
    again = run_experiment("f-principle", store=store, overrides=TINY)
    # a new parent; the listed runs are still current, so they are reused by hash and version
    assert not again.reused and again.run_id != first.run_id
    assert again.summary["runs"]["seed=0"] == victim and len(train_ids(store)) == 2
    failed = again.summary["runs"]["seed=1"]
    store.finish_run(failed, "failed", error="RuntimeError: lost")
    third = run_experiment("f-principle", store=store, overrides=TINY)
    assert not third.reused and third.run_id not in (first.run_id, again.run_id)
    assert third.summary["runs"]["seed=0"] == victim and third.summary["runs"]["seed=1"] not in (failed, victim)
    assert len(train_ids(store)) == 3  # only the failed run trained again


def test_diverged_runs_are_results_judged_again_without_training(store, monkeypatch):
    wild = {"seeds": [0], "train": {"lr": 1e3, "steps": 30, "max_loss": 50.0}}
    first = run_experiment("f-principle", store=store, overrides=wild)
    assert "diverged" in first.verdict["reason"]
    seen = []

    def verdict(cfg, summary):
        seen.append(summary)
        return fixed_verdict(cfg, summary)

    patch_verdict(monkeypatch, verdict)
    again = run_experiment("f-principle", store=store, overrides=wild)
    assert again.reused and again.run_id == first.run_id and len(seen) == 1
    assert [r["status"] for r in store.list_runs(kind="train")] == ["diverged"]


# ------------------------------------------------------------------------------ measurement runs
CALLS = []


def square(params):
    CALLS.append(params["x"])
    return {"value": float(params["x"]) ** 2}


def _prepared(verdict):
    def analyze(cfg, runs):
        return {"values": [float(r.result["value"]) for r in runs], "statuses": [r.status for r in runs]}

    exp = Experiment(name="toy-reuse", title="t", source="arXiv:0000.00000", claim="c.", config=ExperimentSpec,
                     presets={"quick": {}, "full": {}}, analyze=analyze, verdict=verdict,
                     figures=lambda c, r, s: {}, plan=no_training)
    return Prepared(exp, ExperimentSpec(experiment="toy-reuse"), [],
                    [Computation("x=2", square, {"x": 2}), Computation("x=3", square, {"x": 3})])


def test_measurements_are_judged_again_and_recomputed_only_for_other_code(store, monkeypatch):
    CALLS.clear()
    old = _prepared(lambda c, s: Verdict("toy-reuse", (Check("sum", sum(s["values"]), ">", 100.0),)))
    parent, _ = open_parent(old, store)
    first = finish(old, parent, measure_items(old, parent, store), store)
    assert not first.passed and CALLS == [2, 3]
    measured = first.summary["runs"]

    new = _prepared(lambda c, s: Verdict("toy-reuse", (Check("sum", sum(s["values"]), ">", 10.0),)))
    again = reuse(new, store)
    assert again is not None and again.reused and again.passed and again.run_id == parent
    assert again.summary["values"] == [4.0, 9.0] and again.summary["runs"] == measured and CALLS == [2, 3]
    assert store.get_run(parent)["passed"] is True

    # the compute function's module changed: its stored results are not current any more
    monkeypatch.setattr(versioning, "module_digest", lambda module: "changed")
    assert reuse(new, store) is None
    parent2, _ = open_parent(new, store)
    runs = measure_items(new, parent2, store)
    assert CALLS == [2, 3, 2, 3] and {r.run_id for r in runs}.isdisjoint(measured.values())
    assert {store.get_run(r.run_id)["code_version"] for r in runs} == {versioning.measure_version(square)}
    assert np.isclose(float(runs[1].result["value"]), 9.0)


# ------------------------------------------------------------------------------ sweeps
def test_a_finished_sweep_is_judged_again_without_training(store, monkeypatch):
    spec = sweep_from_cli("f-principle", ["train.lr=0.001,0.002"], seeds=1, base_overrides=["train.steps=20"])
    first = run_sweep(spec, store=store)
    assert not any(o.passed for _, o in first.points)
    trained = train_ids(store)

    patch_verdict(monkeypatch)
    again = run_sweep(spec, store=store)
    assert again.reused and again.run_id == first.run_id
    assert [o.run_id for _, o in again.points] == [o.run_id for _, o in first.points]
    assert all(o.passed and o.reused for _, o in again.points)
    assert train_ids(store) == trained and len(store.list_runs(kind="sweep")) == 1
    points = store.get_run(first.run_id)["summary"]["points"]
    assert [p["passed"] for p in points] == [True, True]
    assert all(p["measured"] == {"fixed check": 1.0} for p in points)
