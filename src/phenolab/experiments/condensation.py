"""Condensation: at small initialization the input weights of a two-layer ReLU net gather at a few
orientations; at large initialization they stay spread out.

Luo et al. (2021), arXiv:2007.07497, and the group's condensation notebook (docs/specs/condensation.md):
1-D features of neuron k are the orientation theta_k = sign(b_k) arccos(w_k / ||(w_k, b_k)||) and
the amplitude A_k = |a_k| ||(w_k, b_k)||. The check COND-1 (a protocol choice, not piloted):
after training, the top 4 orientation bins of width 0.05 rad hold >= 90 % of sum_k A_k at
gamma = 2 (condensed regime), and < 30 % at gamma = 0.5 (linear regime); gamma' = 0, width 100,
the phase diagram's 4-point data and training rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import model_validator

from phenolab.config import PosInt, ProbeSpec, Seeds, Spec
from phenolab.experiments import phase_diagram as pd
from phenolab.experiments.analysis import median_or_none
from phenolab.experiments.base import Experiment, Planned, RunData, conditions_of, register, with_conditions
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.probes.condensation import top_orientation_share
from phenolab.report import plots

SOURCE = "arXiv:2007.07497 (condensed regime; feature scatter of the group's notebook)"


class CondensationCheck(Spec):
    """Check COND-1 of docs/specs/condensation.md (a protocol choice, not piloted)."""

    bins: int = 4
    bin_width: float = 0.05  # rad
    small_init_min_share: float = 0.9
    large_init_max_share: float = 0.3  # near the statistic's chance level at random init (~0.3): see details
    small_init_max_directions: int = 4  # phenolab's addition: few condensed directions at small init
    large_over_small_directions: float = 2.0  # ... and many more at large init


class CondensationConfig(pd.ReluSetup):
    experiment: str = "condensation"
    seeds: Seeds = [0, 1, 2]
    width: PosInt = 100
    small_gamma: float = 2.0  # phase coordinate gamma (gamma' = 0): std = m^(-gamma/2) on both layers
    large_gamma: float = 0.5
    probes: list[ProbeSpec] = [ProbeSpec(name="condensation", every=10, options={"features": True})]
    check: CondensationCheck = CondensationCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> CondensationConfig:
        self.require_probes("condensation")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "full": {"seeds": [0, 1, 2, 3, 4]},
    # the smallest run of the whole pipeline (contract tests): one seed, width 16, 100 steps
    "smoke": {"seeds": [0], "width": 16, "train": {"steps": 100}},
}


@dataclass(frozen=True)
class Init:
    """A run's condition: small or large initialization (phase coordinate gamma, gamma' = 0) and seed."""

    size: Literal["small", "large"]
    gamma: float
    seed: int

    @property
    def label(self) -> str:
        return f"{self.size} init (gamma={self.gamma:g}),seed={self.seed}"


def plan(cfg: CondensationConfig) -> list[Planned]:
    sizes: tuple[tuple[Literal["small", "large"], float], ...] = (("small", cfg.small_gamma),
                                                                   ("large", cfg.large_gamma))
    conditions = [Init(size, gamma, seed) for size, gamma in sizes for seed in cfg.seeds]
    return [Planned(c.label, cfg.point_run(c.gamma, 0.0, cfg.width, c.seed), c) for c in conditions]


def _share(run: RunData, cfg: CondensationConfig, index: int) -> float | None:
    """Top-bins share of the amplitude at probe `index` (0: initialization, -1: end of training)."""
    if run.status != "done":
        return None
    angle, amplitude = run.artifact("condensation/angle"), run.artifact("condensation/amplitude")
    return top_orientation_share(angle["values"][index], amplitude["values"][index],
                                 bin_width=cfg.check.bin_width, bins=cfg.check.bins)


def analyze(cfg: CondensationConfig, runs: list[RunData]) -> dict[str, Any]:
    """Final and initial top-bins shares, and the number of condensed directions (clusters of
    |cos| > 0.95 carrying 90 % of the amplitude) at the end, per run."""
    shares: dict[str, dict[str, float | None]] = {"small": {}, "large": {}}
    initial: dict[str, float | None] = {}
    directions: dict[str, float | None] = {}
    per_size: dict[str, list[float | None]] = {"small": [], "large": []}
    for run in with_conditions(runs, conditions_of(plan(cfg))):
        shares[run.condition.size][run.label] = _share(run, cfg, -1)
        initial[run.label] = _share(run, cfg, 0)
        n_dir = run.series("condensation/n_directions")
        directions[run.label] = float(n_dir.iloc[-1]) if len(n_dir) else None
        per_size[run.condition.size].append(directions[run.label])
    return {"shares": shares, "initial_shares": initial, "n_directions": directions,
            "small_directions": median_or_none(per_size["small"]),
            "large_directions": median_or_none(per_size["large"]),
            "small_median": median_or_none(shares["small"].values()),
            "large_median": median_or_none(shares["large"].values()),
            "failure": failed_runs(runs)}


def verdict(cfg: CondensationConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    top = f"top {c.bins} orientation bins ({c.bin_width:g} rad)"
    checks = (
        Check(f"share of sum A_k in the {top}, small init gamma={cfg.small_gamma:g} (median)",
              summary["small_median"], ">=", c.small_init_min_share,
              paper=">= 90 % (protocol, docs/specs/condensation.md)"),
        Check(f"share of sum A_k in the {top}, large init gamma={cfg.large_gamma:g} (median)",
              summary["large_median"], "<", c.large_init_max_share,
              paper="< 30 % (protocol, docs/specs/condensation.md)"),
        Check("condensed directions at the end, small init (median)", summary["small_directions"], "<=",
              c.small_init_max_directions, paper="a few orientations"),
        Check("condensed directions, large init / small init (medians)",
              None if not summary["small_directions"] or summary["large_directions"] is None
              else summary["large_directions"] / summary["small_directions"], ">=", c.large_over_small_directions,
              paper="no condensation at large init"),
    )
    return Verdict("condensation", checks, source=SOURCE, failure=summary["failure"],
                   details={"share per run": summary["shares"],
                            "share at initialization (chance level of the statistic)": summary["initial_shares"],
                            "condensed directions at the end (|cos| > 0.95, 90 % of amplitude)":
                                summary["n_directions"]})


def figures(cfg: CondensationConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    out = {}
    runs = with_conditions(runs, conditions_of(plan(cfg)))
    for size in ("small", "large"):
        run = next((r for r in runs if r.condition.size == size and r.status == "done"), None)
        if run is None:
            continue
        angle, amplitude = run.artifact("condensation/angle"), run.artifact("condensation/amplitude")
        keep = sorted({0, len(angle["steps"]) // 3, 2 * len(angle["steps"]) // 3, len(angle["steps"]) - 1})
        out[f"features ({run.label})"] = plots.feature_scatter(
            [(int(angle["steps"][i]), angle["values"][i], amplitude["values"][i]) for i in keep],
            title=f"neuron orientation and amplitude, {run.label}")
    return out


EXPERIMENT = register(Experiment(
    name="condensation",
    title="Condensation of input weights at small initialization",
    source=SOURCE,
    claim="At small initialization (gamma = 2) the neurons of a two-layer ReLU net condense onto a few "
          "orientations; at large initialization (gamma = 0.5) they do not.",
    config=CondensationConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
