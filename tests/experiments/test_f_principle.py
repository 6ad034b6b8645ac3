"""The catalog's F-Principle entries run end to end and pass their verdicts (quick presets)."""

import math

import pytest

from phenolab.execution import run_experiment
from phenolab.experiments import get_experiment
from phenolab.store import Store


@pytest.fixture()
def store(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        yield st


@pytest.mark.slow
def test_f_principle_quick_passes_with_low_frequency_first(store):
    outcome = run_experiment("f-principle", store=store, preset="quick")
    v = outcome.verdict
    assert v["passed"], v["reason"]
    t = v["details"]["t per seed"]
    assert len(t) == 3
    for steps in t.values():  # the lowest peak converges first, and well before the highest
        assert steps[0] is not None and (steps[-1] is None or steps[-1] >= 3 * steps[0])
    freqs = v["details"]["peak angular frequencies"]
    assert [round(f) for f in freqs] == [1, 3, 5] or all(abs(f - w) < 0.4 for f, w in zip(freqs, (1, 3, 5)))
    run = store.get_run(outcome.run_id)
    assert run["status"] == "done" and run["passed"] == 1
    figures = [a for a in store.artifacts(outcome.run_id) if a["kind"] == "figure"]
    assert any("heat map" in a["name"] for a in figures)
    assert (store.run_dir(outcome.run_id) / "report.html").exists()
    # resume by hash: the same config is reused, not re-run
    again = run_experiment("f-principle", store=store, preset="quick")
    assert again.reused and again.run_id == outcome.run_id


@pytest.mark.slow
def test_f_principle_nd_quick_passes(store):
    outcome = run_experiment("f-principle-nd", store=store, preset="quick")
    assert outcome.verdict["passed"], outcome.verdict["reason"]
    fractions = [c for c in outcome.verdict["checks"] if "share of steps" in c["name"]]
    assert fractions and fractions[0]["measured"] >= 0.9


def test_diverged_runs_fail_the_verdict_with_the_reason(store):
    outcome = run_experiment("f-principle", store=store, preset="quick",
                             overrides={"seeds": [0], "train": {"lr": 1e3, "steps": 30, "max_loss": 50.0}})
    assert not outcome.passed
    assert "diverged" in outcome.verdict["reason"]
    kids = store.children(outcome.run_id)
    assert [k["status"] for k in kids] == ["diverged"]


def test_negative_control_without_the_low_peak_does_not_crash(store):
    outcome = run_experiment("f-principle", store=store, preset="quick", overrides={
        "seeds": [0], "data": {"kind": "sines", "frequencies": [3.0, 5.0], "amplitudes": [2.0, 3.0]},
        "train": {"steps": 300}})
    freqs = outcome.verdict["details"]["peak angular frequencies"]
    assert len(freqs) == 2 and not any(math.isclose(f, 1.0, abs_tol=0.4) for f in freqs)


def test_presets_follow_the_paper():
    e = get_experiment("f-principle")
    full = e.resolve("full")
    assert full.model.hidden_widths == [200, 200, 200, 100] and full.model.activation == "tanh"
    assert full.train.optimizer == "adam" and full.train.lr == 2e-4 and full.train.steps == 3000
    assert full.data.n_train == 101 and full.data.interval == (-5.0, 5.0) and full.seeds == [0, 1, 2]
