"""F-Principle in 1-D: a network fits sin x + 2 sin 3x + 3 sin 5x from low to high frequency.

Xu, Zhang, Xiao (2018), arXiv:1807.01251, and Xu et al. (2019), arXiv:1901.06523: the relative
error of each spectral peak of the target, Delta_F(k) = |h^(k) - y^(k)| / |y^(k)|, falls below a
threshold in order of frequency, although the highest frequency has the largest amplitude.
Canonical setting (the group's `f_principle.py`): 101 points on [-5, 5], tanh net with hidden
widths 200-200-200-100, Adam lr 2e-4, full batch, 3000 epochs. Check FP-1: docs/specs/frequency-principle.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
from pydantic import model_validator

from phenolab.config import ExperimentSpec, MLPSpec, ProbeSpec, RunSpec, Seeds, SinesData, Spec, TrainSpec
from phenolab.experiments.analysis import first_step_below, median_or_none
from phenolab.experiments.base import Experiment, RunData, register
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.probes.frequency import frequency_keys
from phenolab.report import plots

SOURCE = "arXiv:1807.01251 (Fig. 1, peak heat map); arXiv:1901.06523"
STRICT_BELOW = 0.05  # FP-1's stricter form (lowest below 0.05 at least 5x earlier), reported, not judged


class FPrincipleCheck(Spec):
    """Verdict thresholds: check FP-1 of docs/specs/frequency-principle.md."""

    converged_below: float = 0.1  # a peak has converged once Delta_F < this
    min_ratio: float = 3.0  # t_highest >= min_ratio * t_lowest [the factor 3 is a guess]
    high_error_at_low: float = 0.5  # Delta_F(highest) still above this when the lowest converges
    min_seeds: int = 2  # seeds that must pass (the 2 of 3 convention, docs/specs/README.md)


class FPrincipleConfig(ExperimentSpec):
    experiment: str = "f-principle"
    seeds: Seeds = [0, 1, 2]
    model: MLPSpec = MLPSpec(widths=[200, 200, 200, 100], activation="tanh")
    data: SinesData = SinesData()
    train: TrainSpec = TrainSpec(optimizer="adam", lr=2e-4, steps=3000, probe_every=10)
    probes: list[ProbeSpec] = [
        ProbeSpec(name="frequency", options={"max_peaks": 3}),
        ProbeSpec(name="outputs", every=50),
    ]
    check: FPrincipleCheck = FPrincipleCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _needs_probes(self) -> FPrincipleConfig:
        self.require_probes("frequency", "outputs")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # the paper's sizes are small enough for a CPU: quick trims only the number of steps
    "quick": {"train": {"steps": 1500}},
    "full": {"train": {"steps": 3000}},
    # the smallest run of the whole pipeline (contract tests): one seed, a tiny net, 60 steps
    "smoke": {"seeds": [0], "model": {"widths": [16, 16]}, "data": {"n_train": 41},
              "train": {"steps": 60, "probe_every": 10}, "probes": [{"name": "frequency", "options": {"max_peaks": 3}},
                                                                   {"name": "outputs", "every": 30}]},
}


@dataclass(frozen=True)
class SeedResult:
    """One seed's numbers (stored as a dict under the run's label in ``per_seed``)."""

    t: list[int | None]  # per peak, lowest frequency first: first step with Delta_F < converged_below
    ordered: bool  # t_1 <= t_2 <= ... (every peak but possibly the last converged)
    ratio: float | None  # t_highest / t_lowest
    ratio_is_lower_bound: bool  # the highest peak never converged: ratio = steps / t_lowest
    high_error_at_low: float | None  # Delta_F(highest) at t_lowest
    passed: bool
    strict_t: list[int | None]  # (t_lowest, t_highest) at Delta_F < STRICT_BELOW


def analyze(cfg: FPrincipleConfig, runs: list[RunData]) -> dict[str, Any]:
    """Per seed: the step t_j at which each peak's Delta_F first falls below the threshold."""
    thr = cfg.check.converged_below
    per_seed: dict[str, Any] = {}
    peak_freqs: list[float] = []
    for run in runs:
        if run.status != "done":
            continue
        freqs = [float(f) for f in run.artifact("frequency/peak_freq")["values"][0]]
        cols = frequency_keys(len(freqs))
        if not peak_freqs:
            peak_freqs = freqs
        t = [first_step_below(run.series(c), thr) for c in cols]
        strict = [first_step_below(run.series(c), STRICT_BELOW) for c in (cols[0], cols[-1])]
        t_low, t_high = t[0], t[-1]
        ordered = all(a is not None and (b is None or a <= b) for a, b in zip(t, t[1:])) and t_low is not None
        steps = cast(RunSpec, run.spec).train.steps
        if t_low is None:
            ratio, ratio_bound = None, False
        elif t_high is None:  # the highest peak never converged: the ratio is at least this
            ratio, ratio_bound = steps / max(t_low, 1), True
        else:
            ratio, ratio_bound = t_high / max(t_low, 1), False
        high_at_low = float(run.series(cols[-1]).loc[t_low]) if t_low is not None else None
        passed = (ordered and ratio is not None and ratio >= cfg.check.min_ratio
                  and high_at_low is not None and high_at_low > cfg.check.high_error_at_low)
        per_seed[run.label] = asdict(SeedResult(t, ordered, ratio, ratio_bound, high_at_low, passed, strict))
    return {
        "per_seed": per_seed,
        "peak_freqs": peak_freqs,
        "seeds_passed": sum(s["passed"] for s in per_seed.values()),
        "seeds_ordered": sum(s["ordered"] for s in per_seed.values()),
        "median_ratio": median_or_none(s["ratio"] for s in per_seed.values()),
        "median_high_error_at_low": median_or_none(s["high_error_at_low"] for s in per_seed.values()),
        "failure": failed_runs(runs),
    }


def verdict(cfg: FPrincipleConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    n = len(cfg.seeds)
    checks = (
        Check(f"seeds (of {n}) passing: t_1 <= t_2 <= ... and t_high >= {c.min_ratio:g} t_low",
              summary["seeds_passed"], ">=", min(c.min_seeds, n), paper="low frequencies converge first"),
        Check("t_highest / t_lowest (median over seeds)", summary["median_ratio"], ">=", c.min_ratio,
              paper="heat map staircase; factor 3 is the protocol's guess (docs/specs/frequency-principle.md)"),
        Check("Delta_F(highest peak) when the lowest converged (median)", summary["median_high_error_at_low"],
              ">", c.high_error_at_low, paper="highest peak still unlearned"),
    )
    return Verdict("f-principle", checks, source=SOURCE, failure=summary["failure"],
                   details={"t per seed": {k: v["t"] for k, v in summary["per_seed"].items()},
                            f"stricter form: (t_low, t_high) at Delta_F < {STRICT_BELOW}": {
                                k: v["strict_t"] for k, v in summary["per_seed"].items()},
                            "peak angular frequencies": summary["peak_freqs"]})


def figures(cfg: FPrincipleConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    run = next((r for r in runs if r.status == "done"), None)
    if run is None:
        return {}
    rel = run.artifact("frequency/rel_err")
    freqs = summary["peak_freqs"]
    labels = [f"omega = {f:.2f}" for f in freqs]
    out = {
        f"peak heat map ({run.label})": plots.peak_heatmap(
            rel["steps"], rel["values"], labels,
            title=f"F-Principle: relative error per peak ({run.label})"),
    }
    t = summary["per_seed"].get(run.label, {}).get("t", [])
    out[f"relative error per peak ({run.label})"] = plots.curves(
        rel["steps"], {lab: rel["values"][:, j] for j, lab in enumerate(labels)},
        title="Delta_F per spectral peak", ylabel="relative error", logy=True,
        hlines={"converged": cfg.check.converged_below},
        marks={f"t_{j + 1}": float(s) for j, s in enumerate(t) if s is not None})
    snaps = run.artifact("outputs/y_pred")
    x = run.artifact("outputs/x")["values"][0][:, 0]
    target = run.artifact("outputs/y")["values"][0][:, 0]
    # snapshots at the start, near each peak's convergence step, and at the end
    wanted = [0, *(s for s in t if s is not None), int(snaps["steps"][-1])]
    keep = sorted({int(np.abs(snaps["steps"] - w).argmin()) for w in wanted})
    out[f"fit over training ({run.label})"] = plots.fit_1d(
        x, target, [(int(snaps["steps"][i]), snaps["values"][i][:, 0]) for i in keep],
        title="network output at step 0, near each peak's convergence, and at the end")
    return out


EXPERIMENT = register(Experiment(
    name="f-principle",
    title="Frequency principle, 1-D",
    source=SOURCE,
    claim="A DNN fits sin x + 2 sin 3x + 3 sin 5x from low to high frequency: the lowest peak's "
          "relative error converges at least 3x earlier than the highest's.",
    config=FPrincipleConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
))
