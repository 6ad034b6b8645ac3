"""The phase diagram of two-layer ReLU networks: linear, critical and condensed regimes.

Luo, Xu, Ma, Zhang (2021), arXiv:2007.07497, JMLR 22. For f(x) = sum_k a_k ReLU(w_k x + b_k)
with a ~ N(0, beta_1^2), (w, b) ~ N(0, beta_2^2) and width m, the coordinates are
gamma = -log(beta_1 beta_2) / log m and gamma' = -log(beta_1 / beta_2) / log m. As m grows the
relative change of the input weights RD = ||theta_w(t*) - theta_w(0)|| / ||theta_w(0)|| tends to
0 (linear regime: gamma < 1 or gamma' > gamma - 1), to infinity (condensed: gamma > 1 and
gamma' < gamma - 1), or stays O(1) on the boundary (critical). Measured by the slope of
log RD against log m at the stopping time.

CPU setting (docs/specs/condensation.md, the group's notebook): 4 points x = -1, -1/3, 1/3, 1 with
y = 0.2 ReLU(x - 1/3) + 0.2 ReLU(-x - 1/3); antisymmetric init; full-batch GD from
lr = 0.5 / (m max(beta_1^2, beta_2^2)) (capped at 10) on (1/2n) sum e^2, halved and restarted
when the loss jumps by more than 50 %; stop at 1e-4 of the initial loss. phenolab's MSE has no
1/2, so its learning rate is half of that to give the same dynamics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from pydantic import model_validator

from phenolab.config import (
    ExperimentSpec,
    ExpressionData,
    InitSpec,
    MLPSpec,
    PosInt,
    ProbeSpec,
    RunSpec,
    Seeds,
    Spec,
    TrainSpec,
)
from phenolab.experiments.analysis import fit_slope
from phenolab.experiments.base import (
    Experiment,
    Planned,
    RunData,
    by_condition,
    conditions_of,
    register,
    with_conditions,
)
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.report import plots

SOURCE = "arXiv:2007.07497 (Luo et al. 2021, phase diagram figure; RD slope against width)"
REGIMES = ("linear", "critical", "condensed")

# the piloted points (PD-1 in docs/specs/condensation.md): (gamma, gamma') -> (rule, bound, calibrated slope)
SPEC_RULES: dict[tuple[float, float], tuple[str, float, float]] = {
    (0.5, 0.0): ("<", -0.2, -0.56), (0.75, -0.5): ("<", -0.15, -0.32), (1.5, 1.0): ("<", -0.2, -1.18),
    (1.0, 0.0): ("|<|", 0.15, -0.05), (2.0, 1.0): ("|<|", 0.15, -0.09),
    (1.25, 0.0): (">", 0.08, 0.16), (1.5, 0.0): (">", 0.15, 0.29), (1.5, -0.5): (">", 0.25, 0.50),
    (2.0, 0.0): (">", 0.25, 0.51),
}


def theory_regime(gamma: float, gamma_prime: float, tol: float = 1e-9) -> str:
    """Theorems 1-2 of 2007.07497: linear if gamma < 1 or gamma' > gamma - 1; condensed if
    gamma > 1 and gamma' < gamma - 1; critical on the boundary between them."""
    if gamma < 1 - tol or gamma_prime > gamma - 1 + tol:
        return "linear"
    if gamma > 1 + tol and gamma_prime < gamma - 1 - tol:
        return "condensed"
    return "critical"


def boundary_distance(gamma: float, gamma_prime: float) -> float:
    """Euclidean distance in the (gamma, gamma') plane to the critical boundary: the ray
    gamma = 1, gamma' <= 0 and the ray gamma' = gamma - 1, gamma >= 1 (both from (1, 0))."""
    dx, dy = gamma - 1.0, gamma_prime
    to_vertical = abs(dx) if dy <= 0 else math.hypot(dx, dy)
    along = (dx + dy) / math.sqrt(2)  # projection on the diagonal direction (1, 1) / sqrt 2
    to_diagonal = abs(dy - dx) / math.sqrt(2) if along >= 0 else math.hypot(dx, dy)
    return min(to_vertical, to_diagonal)


def init_stds(gamma: float, gamma_prime: float, width: int) -> tuple[float, float]:
    """(beta_2, beta_1): input-weight and output-weight stds with beta_1 beta_2 = m^-gamma and
    beta_1 / beta_2 = m^-gamma' (alpha = 1)."""
    beta_1 = width ** (-(gamma + gamma_prime) / 2)
    beta_2 = width ** (-(gamma - gamma_prime) / 2)
    return beta_2, beta_1


def classify(slope: float, linear_below: float, condensed_above: float) -> str:
    if slope < linear_below:
        return "linear"
    if slope > condensed_above:
        return "condensed"
    return "critical"


class PhaseCheck(Spec):
    """Classification thresholds (from the pilot, docs/specs/condensation.md) and the verdict rule."""

    linear_below: float = -0.15  # slope < this: linear
    condensed_above: float = 0.08  # slope > this: condensed; in between: critical
    min_distance: float = 0.25  # judge only points at least this far from the boundary
    min_fraction: float = 0.9  # share of those classified as theory says


class ReluSetup(ExperimentSpec):
    """The CPU protocol shared by the phase diagram and condensation: two-layer ReLU net with
    biases, no output bias, antisymmetric init; 4 points; GD from lr_scale / (m max beta^2) capped
    at lr_cap (for their 1/2-MSE), restarted at half lr on a 50 % loss jump; stop at 1e-4 L0."""

    lr_scale: float = 0.5
    lr_cap: float = 10.0
    model: MLPSpec = MLPSpec(width=100, activation="relu", bias=True, output_bias=False,
                                 init=InitSpec(antisymmetric=True))
    data: ExpressionData = ExpressionData(expr="0.2*maximum(x - 1/3, 0) + 0.2*maximum(-x - 1/3, 0)",
                                          interval=(-1.0, 1.0), n_train=4)
    train: TrainSpec = TrainSpec(optimizer="gd", lr=0.1, steps=20000, stop_ratio=1e-4, restart_on_jump=0.5,
                                 probe_every=10**9)

    def point_run(self, gamma: float, gamma_prime: float, width: int, seed: int) -> RunSpec:
        """The run at phase point (gamma, gamma') and width m: init stds and GD learning rate."""
        beta_2, beta_1 = init_stds(gamma, gamma_prime, width)
        lr = min(self.lr_scale / (width * max(beta_1, beta_2) ** 2), self.lr_cap) / 2  # /2: MSE without 1/2
        return self.run_spec(seed, **{"model.width": width, "model.init.std": [beta_2, beta_1], "train.lr": lr})


class PhaseDiagramConfig(ReluSetup):
    experiment: str = "phase-diagram"
    seeds: Seeds = [0]
    points: list[tuple[float, float]] = list(SPEC_RULES)
    widths: list[PosInt] = [100, 400, 1600, 6400]
    probes: list[ProbeSpec] = [ProbeSpec(name="relative_distance")]
    check: PhaseCheck = PhaseCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> PhaseDiagramConfig:
        self.require_probes("relative_distance")
        if len(set(self.widths)) < 2:
            raise ValueError(f"widths: a slope needs at least two different widths, got {self.widths}")
        if not self.points:
            raise ValueError("points: give at least one (gamma, gamma') point")
        return self


PRESETS = {
    "quick": {},
    # the piloted points on a wider width range, three seeds, plus a grid over the plane
    "full": {"seeds": [0, 1, 2], "widths": [100, 400, 1600, 6400, 25600],
             "points": sorted(set(SPEC_RULES) | {(g, gp) for g in (0.5, 1.0, 1.5, 2.0, 2.5)
                                                 for gp in (-1.0, -0.5, 0.0, 0.5, 1.0)})},
    # the smallest run of the whole pipeline (contract tests): two points, two small widths, 200 steps
    "smoke": {"seeds": [0], "widths": [8, 16], "points": [[0.5, 0.0], [2.0, 0.0]], "train": {"steps": 200}},
}


@dataclass(frozen=True)
class Point:
    """A run's condition: phase point (gamma, gamma'), width m and seed."""

    gamma: float
    gamma_prime: float
    width: int
    seed: int

    @property
    def label(self) -> str:
        return label(self.gamma, self.gamma_prime, self.width, self.seed)


def label(gamma: float, gamma_prime: float, width: int, seed: int) -> str:
    return f"gamma={gamma:g},gamma'={gamma_prime:g},m={width},seed={seed}"


def plan(cfg: PhaseDiagramConfig) -> list[Planned]:
    """One run per point, width and seed; init stds and lr follow the point and the width."""
    return [Planned(p.label, cfg.point_run(p.gamma, p.gamma_prime, p.width, p.seed), p)
            for p in (Point(gamma, gamma_prime, width, seed) for gamma, gamma_prime in cfg.points
                      for width in cfg.widths for seed in cfg.seeds)]


def analyze(cfg: PhaseDiagramConfig, runs: list[RunData]) -> dict[str, Any]:
    """RD of (w, b) at the stopping time per run; per point and seed the slope over widths."""
    by_point = by_condition(with_conditions(runs, conditions_of(plan(cfg))))
    c = cfg.check
    points: list[dict[str, Any]] = []
    for gamma, gamma_prime in cfg.points:
        slopes, curves, converged = [], {}, True
        for seed in cfg.seeds:
            rds = []
            for width in cfg.widths:
                run = by_point[Point(gamma, gamma_prime, width, seed)]
                rd = run.series("relative_distance/first")
                rds.append(float(rd.iloc[-1]) if run.status == "done" and len(rd) else math.nan)
                converged &= (run.status == "done"
                              and cast(RunSpec, run.spec).train.steps > int(run.series("loss").index[-1]))
            curves[seed] = rds
            if all(math.isfinite(v) and v > 0 for v in rds):
                slopes.append(fit_slope(cfg.widths, rds))
        slope = float(np.median(slopes)) if slopes else None
        regime = classify(slope, c.linear_below, c.condensed_above) if slope is not None else "unknown"
        rule = SPEC_RULES.get((gamma, gamma_prime))
        points.append({
            "gamma": gamma, "gamma_prime": gamma_prime, "slope": slope, "slopes": slopes,
            "rd": {str(s): v for s, v in curves.items()}, "measured": regime,
            "theory": theory_regime(gamma, gamma_prime), "distance": boundary_distance(gamma, gamma_prime),
            "converged": converged, "spec_rule": rule,
            "spec_rule_passed": None if rule is None or slope is None else _rule_passes(slope, *rule[:2]),
        })
    far = [p for p in points if p["distance"] >= c.min_distance - 1e-9]
    agree = [p for p in far if p["measured"] == p["theory"]]
    ruled = [p for p in points if p["spec_rule_passed"] is not None]
    return {
        "points": points,
        "far_points": len(far),
        "far_agree": len(agree),
        "far_fraction": len(agree) / len(far) if far else None,
        "spec_rules_passed": sum(bool(p["spec_rule_passed"]) for p in ruled),
        "spec_rules_total": len(ruled),
        "failure": failed_runs(runs),
    }


def _rule_passes(slope: float, op: str, bound: float) -> bool:
    return {"<": slope < bound, ">": slope > bound, "|<|": abs(slope) < bound}[op]


def verdict(cfg: PhaseDiagramConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    disagree = [f"({p['gamma']:g}, {p['gamma_prime']:g}): {p['measured']} vs theory {p['theory']}"
                for p in summary["points"] if p["distance"] >= c.min_distance - 1e-9 and p["measured"] != p["theory"]]
    checks = [
        Check(f"share of points >= {c.min_distance:g} from the boundary classified as theory says "
              f"({summary['far_agree']} of {summary['far_points']}; linear: slope < {c.linear_below:g}, condensed: "
              f"slope > {c.condensed_above:g})", summary["far_fraction"], ">=", c.min_fraction,
              paper="Theorems 1-2: linear / condensed regimes"),
    ]
    for p in summary["points"]:  # the piloted per-point rules (PD-1), where the point is one of them
        if p["spec_rule"] is None:
            continue
        op, bound, calibrated = p["spec_rule"]
        measured = p["slope"] if op != "|<|" or p["slope"] is None else abs(p["slope"])
        checks.append(Check(f"{'|slope|' if op == '|<|' else 'slope'} at ({p['gamma']:g}, {p['gamma_prime']:g}), "
                            f"{p['theory']}", measured, "<" if op == "|<|" else op, bound,
                            paper=f"slope {calibrated:+.2f} (spec calibration)"))
    return Verdict("phase-diagram", tuple(checks), source=SOURCE, failure=summary["failure"], details={
        "slopes": {f"({p['gamma']:g}, {p['gamma_prime']:g})": p["slope"] for p in summary["points"]},
        "misclassified far points": disagree,
        "calibrated per-point rules passed (docs/specs/condensation.md)":
            f"{summary['spec_rules_passed']} of {summary['spec_rules_total']}",
        "points that did not reach train.stop_ratio within train.steps":
            [f"({p['gamma']:g}, {p['gamma_prime']:g})" for p in summary["points"] if not p["converged"]],
    })


def figures(cfg: PhaseDiagramConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    pts = summary["points"]
    out = {"phase diagram": plots.phase_plane(
        [p["gamma"] for p in pts], [p["gamma_prime"] for p in pts], [p["measured"] for p in pts],
        theory=[p["theory"] for p in pts], title="measured regime (colour) vs theory (marker)")}
    seed = str(cfg.seeds[0])
    if not any(math.isfinite(v) and v > 0 for p in pts for v in p["rd"][seed]):
        return out  # no run of this seed finished: nothing to draw on log axes
    out[f"RD against width (seed {seed})"] = plots.curves(
        cfg.widths, {f"({p['gamma']:g}, {p['gamma_prime']:g}) slope {p['slope']:.2f}" if p["slope"] is not None
                     else f"({p['gamma']:g}, {p['gamma_prime']:g})": p["rd"][seed] for p in pts},
        title="RD of the input weights at the stopping time", xlabel="width m", ylabel="RD",
        logx=True, logy=True, markers=True)
    return out


EXPERIMENT = register(Experiment(
    name="phase-diagram",
    title="Phase diagram of two-layer ReLU nets (linear, critical, condensed)",
    source=SOURCE,
    claim="The slope of log RD against log width is negative in the linear regime (gamma < 1 or "
          "gamma' > gamma - 1) and positive in the condensed regime (gamma > 1, gamma' < gamma - 1).",
    config=PhaseDiagramConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
