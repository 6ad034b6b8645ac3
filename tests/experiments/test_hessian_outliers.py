"""Hessian outliers (Sagun et al.): counting helpers, config rules, the verdict on hand-made
spectra, and the quick preset end to end (slow)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import phenolab.experiments.hessian_outliers as ho  # importing registers the experiment
from phenolab.config import ConfigError, MLPSpec
from phenolab.execution import run_experiment
from phenolab.experiments.analysis import min_step
from phenolab.experiments.base import RunData
from phenolab.models import build_model
from phenolab.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny kernels: a second thread only synchronizes


def test_spectrum_counts_against_hand_counts():
    ev = np.array([10.0, 2.0, 0.6, 0.5, 0.4, 0.1, -0.1, 0.05, 0.0, -0.2])
    counts = ho.spectrum_counts(ev, bulk_rel=0.01, outlier_rel=0.05)
    # near zero: |lambda| <= 0.1 -> 0.1, -0.1, 0.05, 0.0; outliers: lambda > 0.5 -> 10, 2, 0.6 (0.5 is not)
    assert counts == {"params": 10, "lambda_max": 10.0, "near_zero": 4, "bulk_fraction": 0.4, "outliers": 3}
    assert ho.spectrum_counts(ev[::-1])["outliers"] == 3  # order does not matter
    for bad in (np.array([0.0, -1.0]), np.array([np.nan, 1.0])):
        counts = ho.spectrum_counts(bad)
        assert math.isnan(counts["outliers"]) and math.isnan(counts["bulk_fraction"])


def test_min_increase():
    assert min_step([1.0, 2.0, 2.0, 5.0]) == 0.0
    assert min_step([3.0, 2.0, 4.0]) == -1.0
    assert min_step([1.0]) is None and min_step([1.0, math.nan]) is None
    assert min_step([1.0, None]) is None


@pytest.mark.parametrize("classes, factor", [(2, 1), (8, 1), (4, 2), (8, 2)])
def test_param_count_matches_the_built_model(classes, factor):
    spec = MLPSpec(widths=[16 * factor, 16 * factor], activation="relu")
    model = build_model(spec, 10, classes, torch.Generator().manual_seed(0))
    base = MLPSpec(widths=[16, 16], activation="relu")
    assert ho.param_count(base, 10, classes, factor) == sum(p.numel() for p in model.parameters())
    assert ho.param_count(base, 10, 8, 2) == 1672  # the largest net of the protocol's setting


def test_plan_covers_classes_widths_and_seeds():
    cfg = ho.EXPERIMENT.resolve("full")
    plan = ho.plan(cfg)
    assert len(plan) == 3 * 2 * 3
    assert plan[0][0] == "k=2,width=16,seed=0" and plan[-1][0] == "k=8,width=32,seed=2"
    labels = {label: spec for label, spec in plan}
    spec = labels["k=4,width=32,seed=1"]
    assert spec.data.classes == 4 and spec.model.hidden_widths == [32, 32] and spec.seed == 1
    assert spec.train.loss.kind == "cross_entropy" and spec.train.optimizer == "gd" and spec.train.steps == 2000
    assert spec.probes[0].options["spectrum"] is True
    quick = ho.EXPERIMENT.resolve("quick")
    assert quick.seeds == [0, 1] and quick.train.steps == 1000


@pytest.mark.parametrize("overrides, message", [
    ({"classes": [4, 2]}, "classes: give at least two class counts in increasing order"),
    ({"classes": [4]}, "classes: give at least two"),
    ({"width_factor": 4}, "width_factor: the wide network for k = 8 has 5384 parameters"),
    ({"probes": [{"name": "hessian"}]}, "options.spectrum=true"),
    ({"train": {"loss": "mse"}}, "must be the training loss train.loss"),
])
def test_bad_configs_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ho.EXPERIMENT.resolve("quick", overrides)


class _FakeStore:
    """Just enough of a Store for `RunData`: one stored spectrum per run id, a loss series."""

    def __init__(self, spectra: dict[int, np.ndarray]) -> None:
        self.spectra = spectra

    def load_artifact(self, run_id: int, name: str) -> dict[str, np.ndarray]:
        assert name == "hessian/spectrum"
        final = self.spectra[run_id]
        return {"steps": np.array([0, 10]), "values": np.stack([np.ones_like(final), final])}

    def metrics(self, run_id: int) -> pd.DataFrame:
        return pd.DataFrame({"step": [0, 10], "name": ["loss", "loss"], "value": [1.0, 0.01]})


def _spectrum(params: int, outliers: int, near_zero: int) -> np.ndarray:
    """lambda_max = 1, `outliers` - 1 more above 0.05, then values in (0.01, 0.05], then the bulk."""
    middle = params - outliers - near_zero
    return np.concatenate([[1.0], np.full(outliers - 1, 0.5), np.full(middle, 0.03), np.full(near_zero, 1e-4)])


def test_verdict_on_hand_made_spectra():
    cfg = ho.EXPERIMENT.resolve("quick")
    # outliers per (k, width): base 2, 3, 5 -> non-decreasing; wide 2, 4, 7 -> the width moves k=8 by 2
    outliers = {(2, 16): 2, (4, 16): 3, (8, 16): 5, (2, 32): 2, (4, 32): 4, (8, 32): 7}
    runs, spectra = [], {}
    for label, spec in ho.plan(cfg):
        k, width = spec.data.classes, spec.model.hidden_widths[0]
        params = ho.param_count(cfg.model, 10, k, 2 if width == 32 else 1)
        near = params - 20 if width == 16 else params - 30  # added near zero = added params - 10
        spectra[len(runs)] = _spectrum(params, outliers[(k, width)], near)
        runs.append(RunData(label, len(runs), spec, "done", None, _FakeStore(spectra)))
    summary = ho.analyze(cfg, runs)
    v = ho.verdict(cfg, summary)
    assert len(v.checks) == 6
    hess1 = [c for c in v.checks if c.name.startswith("HESS-1")]
    assert [c.measured for c in hess1] == pytest.approx([(482 - 20) / 482, (516 - 20) / 516, (584 - 20) / 584])
    assert all(c.passed for c in hess1)
    increase, width_change, growth = [c for c in v.checks if c.name.startswith("HESS-2")]
    assert increase.measured == 1.0 and increase.passed  # 2 -> 3 -> 5
    assert width_change.measured == 2.0 and not width_change.passed  # k=8: 5 -> 7
    assert growth.measured == pytest.approx(min((ho.param_count(cfg.model, 10, k, 2) - ho.param_count(cfg.model, 10, k)
                                                 - 10) / (ho.param_count(cfg.model, 10, k, 2)
                                                          - ho.param_count(cfg.model, 10, k)) for k in (2, 4, 8)))
    assert not v.passed and "when the width doubles" in v.reason
    within = v.details["outlier count in [k-1, k+1] (reported, non-blocking; the recalled '#outliers = k')"]
    assert within["k=2, width 16"] == "mean 2 (seeds: 2, 2) -> in [1, 3]"
    assert within["k=8, width 16"] == "mean 5 (seeds: 5, 5) -> not in [7, 9]"


def test_a_failed_run_fails_the_verdict():
    cfg = ho.EXPERIMENT.resolve("quick")
    runs = [RunData(label, i, spec, "diverged" if i == 0 else "done", "loss = nan" if i == 0 else None,
                    _FakeStore({i: _spectrum(ho.param_count(cfg.model, 10, spec.data.classes,
                                                            spec.model.hidden_widths[0] // 16), 3, 400)
                                for i in range(12)}))
            for i, (label, spec) in enumerate(ho.plan(cfg))]
    summary = ho.analyze(cfg, runs)
    v = ho.verdict(cfg, summary)
    assert not v.passed and v.failure.startswith("runs did not finish: k=2,width=16,seed=0: diverged")
    assert summary["bulk_fraction_min"]["2"] is None and summary["bulk_fraction_min"]["4"] is not None


@pytest.mark.slow
def test_quick_preset_bulk_and_outliers(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        outcome = run_experiment("hessian-outliers", store=store, preset="quick")
        figures = sorted(p.name for p in store.run_dir(outcome.run_id).glob("*.png"))
    s, checks = outcome.summary, {c["name"]: c for c in outcome.verdict["checks"]}
    assert not outcome.verdict["failure"], outcome.verdict["failure"]
    # HESS-1: the bulk near zero holds for every k (pilot 0.95-0.996; here 0.91-0.99)
    hess1 = [c for name, c in checks.items() if name.startswith("HESS-1")]
    assert len(hess1) == 3 and all(c["passed"] for c in hess1), outcome.verdict["reason"]
    assert min(s["bulk_fraction_min"].values()) >= 0.9
    # HESS-2: the bulk grows with the parameters (near zero + ~98 % of the added parameters)
    growth = next(c for name, c in checks.items() if "added near-zero eigenvalues" in name)
    assert growth["passed"] and growth["measured"] > 0.9
    # HESS-2: more classes, more outliers at width 16 (quick: 4, 9.5, 11.5)
    increase = next(c for name, c in checks.items() if "non-decreasing in k" in name)
    assert increase["passed"], outcome.verdict["reason"]
    means = s["mean_outliers"]
    assert means["k=2,width=16"] < means["k=8,width=16"]
    # the width check (|change| <= 1) sits at its threshold here (k=4: 9.5 -> 10.5) and fails in the
    # full preset (k=8: 9 -> 11.3); it is HESS-2's provisional rule, reported, not asserted
    assert s["width_change_max_abs"] is not None
    assert outcome.passed == (s["width_change_max_abs"] <= 1.0), outcome.verdict["reason"]
    assert len(s["runs_table"]) == 12 and all(r["outliers"] >= 1 for r in s["runs_table"])
    assert len(figures) == 4 and any(name.startswith("outlier_count") for name in figures)
