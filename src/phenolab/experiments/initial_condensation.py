"""Initial condensation: at small initialization, early in training, the input weights gather at no
more than 2p orientations, p the multiplicity of the activation at the origin.

Zhou, Zhou, Luo, Zhang, Xu (2022), arXiv:2105.11686 (NeurIPS 2022): tanh (p = 1) gives at most
2 directions (one line, +-), x tanh x (p = 2) at most 4. The group's setting (docs/specs/condensation.md,
`initial_condense.ipynb`): two-layer net, bias on the hidden layer only, d = 5, m = 50, target
sum_k 3.5 sin(5 x_k + 1) on [-4, 2]^5, 80 training points, every weight with std m^-4, Adam lr
1e-3, measured after 100 steps. Directions are greedy clusters of u_k = (w_k, b_k) with signed
cosine > 0.9; a "big" cluster has at least max(2, 0.05 m) members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from phenolab.activations import multiplicity
from phenolab.config import CoordinateSinesData, ExperimentSpec, InitSpec, MLPSpec, ProbeSpec, Seeds, Spec, TrainSpec
from phenolab.experiments.analysis import median_or_none
from phenolab.experiments.base import Experiment, Planned, RunData, conditions_of, register, with_conditions
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.report import plots

SOURCE = "arXiv:2105.11686 (Zhou et al. 2022, cosine-similarity heat maps, tanh vs x tanh)"


class InitialCheck(Spec):
    """Checks IC-1 to IC-3 of docs/specs/condensation.md (piloted on 5 seeds)."""

    tanh_max_big_clusters: float = 2  # = 2p for tanh
    min_singular_energy: float = 0.9
    xtanh_max_big_clusters: float = 5  # bound 2p = 4; the greedy clustering over-counts slightly
    large_init_max_pair_fraction: float = 0.05
    large_init_min_singletons: float = 40


class InitialCondensationConfig(ExperimentSpec):
    experiment: str = "initial-condensation"
    seeds: Seeds = [0, 1, 2, 3, 4]
    small_gamma: float = 4.0  # std = m^-gamma for every weight and bias
    large_gamma: float = 0.5
    compare: str = "xtanh"  # the activation with higher multiplicity
    model: MLPSpec = MLPSpec(width=50, activation="tanh", bias=True, output_bias=False,
                                 init=InitSpec(gamma=4.0))
    data: CoordinateSinesData = CoordinateSinesData(n_train=80, n_test=1000)
    train: TrainSpec = TrainSpec(optimizer="adam", lr=1e-3, steps=100, probe_every=10)
    probes: list[ProbeSpec] = [ProbeSpec(name="condensation", options={"threshold": 0.95, "cluster_threshold": 0.9,
                                                                        "matrix": True})]
    check: InitialCheck = InitialCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> InitialCondensationConfig:
        self.require_probes("condensation")
        multiplicity(self.model.activation)  # both activations need a multiplicity at 0
        multiplicity(self.compare)
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "full": {"seeds": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
    # the smallest run of the whole pipeline (contract tests): one seed, width 8, 20 steps
    "smoke": {"seeds": [0], "model": {"width": 8}, "data": {"n_train": 20, "n_test": 50}, "train": {"steps": 20}},
}

Group = Literal["small", "large", "compare"]
CONDITIONS: tuple[Group, ...] = ("small", "large", "compare")


@dataclass(frozen=True)
class Run:
    """A run's condition: its group (the model's activation at small or large init, or the compared
    activation at small init), that activation and the seed."""

    group: Group
    activation: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.activation}, {'large' if self.group == 'large' else 'small'} init,seed={self.seed}"


def plan(cfg: InitialCondensationConfig) -> list[Planned]:
    runs = []
    act = cfg.model.activation
    for seed in cfg.seeds:
        for cond, changes in ((Run("small", act, seed), {}),
                              (Run("large", act, seed), {"model.init.gamma": cfg.large_gamma}),
                              (Run("compare", cfg.compare, seed), {"model.activation": cfg.compare})):
            runs.append(Planned(cond.label, cfg.run_spec(seed, **changes), cond))
    return runs


def analyze(cfg: InitialCondensationConfig, runs: list[RunData]) -> dict[str, Any]:
    """At the last step (step 100 in the group's setting): big clusters, top singular energy,
    pair fraction and singletons, per condition."""
    per: dict[str, dict[str, list[float]]] = {c: {} for c in CONDITIONS}
    for run in with_conditions(runs, conditions_of(plan(cfg))):
        if run.status != "done":
            continue
        values = per[run.condition.group]
        for key in ("big_clusters", "top_singular_energy", "pair_fraction", "singletons", "n_directions"):
            series = run.series(f"condensation/{key}")
            values.setdefault(key, []).append(float(series.iloc[-1]) if len(series) else np.nan)
    return {
        "per_condition": per,
        "tanh_big_median": median_or_none(per["small"].get("big_clusters", [])),
        "tanh_energy_median": median_or_none(per["small"].get("top_singular_energy", [])),
        "compare_big_median": median_or_none(per["compare"].get("big_clusters", [])),
        "compare_minus_tanh_mean": (float(np.mean(per["compare"]["big_clusters"])
                                          - np.mean(per["small"]["big_clusters"]))
                                    if per["compare"].get("big_clusters") and per["small"].get("big_clusters")
                                    else None),
        "large_pair_fraction_median": median_or_none(per["large"].get("pair_fraction", [])),
        "large_singletons_median": median_or_none(per["large"].get("singletons", [])),
        "failure": failed_runs(runs),
    }


def verdict(cfg: InitialCondensationConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    act, cmp_ = cfg.model.activation, cfg.compare
    p, q = multiplicity(act), multiplicity(cmp_)
    checks = (
        Check(f"big clusters, {act} (p={p}) small init (median)", summary["tanh_big_median"], "<=",
              c.tanh_max_big_clusters, paper=f"<= 2p = {2 * p}; calibration 2, 2, 2, 2, 3"),
        Check(f"top singular-value energy, {act} small init (median)", summary["tanh_energy_median"], ">=",
              c.min_singular_energy, paper="calibration 0.96-1.00"),
        Check(f"big clusters, {cmp_} (p={q}) small init (median)", summary["compare_big_median"], "<=",
              c.xtanh_max_big_clusters, paper=f"<= 2p = {2 * q}; calibration 4, 4, 4, 5, 6"),
        Check(f"mean big clusters, {cmp_} minus {act}", summary["compare_minus_tanh_mean"], ">", 0.0,
              paper="more directions for higher multiplicity"),
        Check(f"pairs with |cos| > 0.95, {act} large init gamma={cfg.large_gamma:g} (median)",
              summary["large_pair_fraction_median"], "<", c.large_init_max_pair_fraction,
              paper="calibration 0.00-0.01"),
        Check(f"singleton clusters, {act} large init (median)", summary["large_singletons_median"], ">=",
              c.large_init_min_singletons, paper=">= 40 of 50"),
    )
    return Verdict("initial-condensation", checks, source=SOURCE, failure=summary["failure"],
                   details={"per condition (last step)": summary["per_condition"]})


def figures(cfg: InitialCondensationConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    out = {}
    runs = with_conditions(runs, conditions_of(plan(cfg)))
    for group in CONDITIONS:
        run = next((r for r in runs if r.status == "done" and r.condition.group == group), None)
        if run is None:
            continue
        cos = run.artifact("condensation/cosine")
        out[f"cosine similarity ({run.label})"] = plots.similarity_heatmap(
            cos["values"][-1], title=f"{run.label}, step {int(cos['steps'][-1])}")
    return out


EXPERIMENT = register(Experiment(
    name="initial-condensation",
    title="Initial condensation bounded by the activation's multiplicity",
    source=SOURCE,
    claim="At small initialization the input weights condense early onto at most 2p directions (tanh: 2, "
          "x tanh x: 4) and do not condense at large initialization.",
    config=InitialCondensationConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
