"""F-Principle in high dimension by Gaussian filtering, on scikit-learn's digits.

Xu et al. (2019), arXiv:1901.06523 (filtering method; the group's `filter_gd.py`): split the
target and the output on the training inputs into a low-frequency part y_low = K y, with K the
row-normalised Gaussian kernel exp(-||x_i - x_j||^2 / (2 s)), and the rest y_high = y - y_low;
the relative error of the low part, e_low, falls before that of the high part, e_high.
The paper uses CIFAR-10 and a CNN; the CPU protocol (docs/specs/frequency-principle.md) uses digits
(1000 training images), an MLP 64-256-256-10 with ReLU, MSE on one-hot labels, Adam 1e-3.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from pydantic import model_validator

from phenolab.config import DigitsData, ExperimentSpec, MLPSpec, ProbeSpec, RunSpec, Seeds, Spec, TrainSpec
from phenolab.experiments.analysis import first_step_below, fraction_true
from phenolab.experiments.base import Experiment, RunData, register
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.probes.filtering import DEFAULT_DELTAS, filter_keys
from phenolab.report import plots

SOURCE = ("arXiv:1901.06523 (filtering method, hot_<s> maps); a CPU version on digits "
          "(docs/specs/frequency-principle.md)")


class FilterCheck(Spec):
    """Verdict thresholds: check FP-2 of docs/specs/frequency-principle.md."""

    after_step: int = 10  # compare e_low and e_high on the logged steps after this one
    min_fraction_low_below_high: float = 0.9
    converged_below: float = 0.2
    min_ratio: float = 2.0  # t(e_high < 0.2) >= 2 t(e_low < 0.2); e_high never there counts as a pass
    min_seeds: int = 2


class FilterConfig(ExperimentSpec):
    experiment: str = "f-principle-nd"
    seeds: Seeds = [0, 1, 2]
    model: MLPSpec = MLPSpec(widths=[256, 256], activation="relu")
    data: DigitsData = DigitsData(n_train=1000, n_test=500, seed=0)
    train: TrainSpec = TrainSpec(optimizer="adam", lr=1e-3, steps=500, probe_every=5)
    probes: list[ProbeSpec] = [
        ProbeSpec(name="filter", options={"deltas": [0.05, 0.1, 0.2]}),
        ProbeSpec(name="accuracy", every=50),
    ]
    check: FilterCheck = FilterCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _needs_probes(self) -> FilterConfig:
        self.require_probes("filter")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"train": {"steps": 300}, "data": {"kind": "digits", "n_train": 600}},
    "full": {"train": {"steps": 500}},
    # the smallest run of the whole pipeline (contract tests): one seed, a tiny net, 100 digits, 20 steps
    "smoke": {"seeds": [0], "model": {"widths": [16]}, "data": {"kind": "digits", "n_train": 100, "n_test": 50},
              "train": {"steps": 20, "probe_every": 5}},
}


def analyze(cfg: FilterConfig, runs: list[RunData]) -> dict[str, Any]:
    """Per seed and filter width: the share of steps with e_low < e_high and the convergence steps."""
    c = cfg.check
    per_seed: dict[str, Any] = {}
    options = next(p.options for p in cfg.probes if p.name == "filter")
    deltas = [float(d) for d in options.get("deltas") or DEFAULT_DELTAS]
    for run in runs:
        if run.status != "done":
            continue
        n_scales = run.artifact("filter/e_low")["values"].shape[-1]
        scales = []
        for low_key, high_key in filter_keys(n_scales):
            low, high = run.series(low_key), run.series(high_key)
            late = low.index > c.after_step
            fraction = fraction_true(low[late] < high[late])
            t_low, t_high = first_step_below(low, c.converged_below), first_step_below(high, c.converged_below)
            if t_low is None:
                ratio = None
            elif t_high is None:
                ratio = cast(RunSpec, run.spec).train.steps / max(t_low, 1)
            else:
                ratio = t_high / max(t_low, 1)
            ok = fraction >= c.min_fraction_low_below_high and ratio is not None and ratio >= c.min_ratio
            scales.append({"fraction_low_below_high": fraction, "t_low": t_low, "t_high": t_high,
                           "ratio": ratio, "high_never_converged": t_high is None, "passed": ok})
        per_seed[run.label] = {"scales": scales, "passed": bool(scales) and all(s["passed"] for s in scales)}
    all_scales = [s for seed in per_seed.values() for s in seed["scales"]]
    ratios = [s["ratio"] for s in all_scales if s["ratio"] is not None]
    return {
        "per_seed": per_seed,
        "deltas": deltas,
        "seeds_passed": sum(s["passed"] for s in per_seed.values()),
        "min_fraction": min((s["fraction_low_below_high"] for s in all_scales), default=None),
        "min_ratio": min(ratios) if len(ratios) == len(all_scales) and ratios else None,
        "failure": failed_runs(runs),
    }


def verdict(cfg: FilterConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    n = len(cfg.seeds)
    checks = (
        Check(f"seeds (of {n}) passing at every filter width", summary["seeds_passed"], ">=", min(c.min_seeds, n),
              paper="low part converges first"),
        Check(f"share of steps > {c.after_step} with e_low < e_high (min over seeds, widths)",
              summary["min_fraction"], ">=", c.min_fraction_low_below_high, paper="e_low below e_high"),
        Check(f"t(e_high < {c.converged_below:g}) / t(e_low < {c.converged_below:g}) (min; lower bound if "
              "e_high never converged)", summary["min_ratio"], ">=", c.min_ratio,
              paper="factor 2 is the protocol's guess (docs/specs/frequency-principle.md)"),
    )
    return Verdict("f-principle-nd", checks, source=SOURCE, failure=summary["failure"],
                   details={"filter widths (fraction of median squared distance)": summary["deltas"]})


def figures(cfg: FilterConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    run = next((r for r in runs if r.status == "done"), None)
    if run is None:
        return {}
    low, high = run.artifact("filter/e_low"), run.artifact("filter/e_high")
    out = {}
    for i, delta in enumerate(summary["deltas"]):
        out[f"e_low and e_high, delta = {delta:g} ({run.label})"] = plots.curves(
            low["steps"],
            {"e_low (low frequency)": low["values"][:, i], "e_high (high frequency)": high["values"][:, i]},
            title=f"Gaussian filter, s = {delta:g} x median ||x_i - x_j||^2", ylabel="relative error",
            hlines={"converged": cfg.check.converged_below})
    both = np.stack([low["values"], high["values"]], axis=2).reshape(len(low["steps"]), -1)
    labels = [f"{part}, delta={d:g}" for d in summary["deltas"] for part in ("low", "high")]
    out[f"low/high heat map ({run.label})"] = plots.peak_heatmap(
        low["steps"], both, labels, title="relative error of the low and high parts")
    return out


EXPERIMENT = register(Experiment(
    name="f-principle-nd",
    title="Frequency principle, high dimension (Gaussian filter, digits)",
    source=SOURCE,
    claim="On real high-dimensional data the low-frequency part of the target (Gaussian-filtered) "
          "converges before the high-frequency part.",
    config=FilterConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
))
