"""NTK convergence: the empirical NTK of a wide network approaches the analytic infinite-width
kernel like width^(-1/2), and changes less during training the wider the network.

Jacot, Gabriel, Hongler (2018), arXiv:1806.07572 (section 6.1, Fig. 1); checks NTK-1a and NTK-1b
of docs/specs/ntk-convergence.md. ReLU network with 3 hidden layers (Jacot's L = 4) in NTK
parametrization, raw weights N(0, 1).
- NTK-1a: on 16 points of the unit circle, the relative Frobenius error ||K_m - Theta||_F /
  ||Theta||_F of the empirical NTK at initialization against `analytic_ntk` (arc-cosine
  recursion), over widths 256, 1024, 4096.
- NTK-1b: x ~ N(0, I_2), y = x_1 x_2 (32 points), 200 full-batch GD steps at the paper's lr 1.0
  (phenolab's MSE has no 1/2, so lr 0.5 here), relative kernel change ||K_200 - K_0|| / ||K_0||
  over widths 128 ... 1024.
Deviation: phenolab's NTK parametrization has bias multiplier 1, not Jacot's beta = 0.1, so the
networks here have no biases (beta = 0); the analytic kernel uses the same convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from phenolab.config import ExperimentSpec, MLPSpec, PosInt, ProbeSpec, ProductData, Seeds, Spec, TrainSpec
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
from phenolab.probes.ntk import relative_kernel_distance
from phenolab.probes.ntk_analytic import analytic_ntk
from phenolab.report import plots

SOURCE = "arXiv:1806.07572 (Jacot et al. 2018, Figs. 1-2; limiting kernel recursion)"


class NTKCheck(Spec):
    """The NTK-1a and NTK-1b pass rules (docs/specs/ntk-convergence.md)."""

    max_error: float = 0.08  # relative error at the largest init width
    slope_low: float = -0.70
    slope_high: float = -0.30
    max_change_slope: float = -0.35


class NTKConfig(ExperimentSpec):
    experiment: str = "ntk-convergence"
    seeds: Seeds = [0, 1, 2, 3, 4]
    init_widths: list[PosInt] = [256, 1024, 4096]
    train_widths: list[PosInt] = [128, 256, 512, 1024]
    train_seeds: Seeds = [0, 1, 2]
    train_points: PosInt = 32
    model: MLPSpec = MLPSpec(width=256, depth=3, activation="relu", bias=False, parametrization="ntk")
    data: ProductData = ProductData(sampling="circle", n_train=16)
    train: TrainSpec = TrainSpec(optimizer="gd", lr=0.5, steps=200, probe_every=10**9)
    probes: list[ProbeSpec] = [ProbeSpec(name="ntk", options={"matrix": True, "top": 3})]
    check: NTKCheck = NTKCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> NTKConfig:
        self.require_probes("ntk")
        if len(set(self.init_widths)) < 2 or len(set(self.train_widths)) < 2:
            raise ValueError("init_widths, train_widths: a slope needs at least two different widths each")
        if self.model.activation != "relu" or self.model.parametrization != "ntk" or self.model.bias:
            raise ValueError("model: the analytic kernel here is for bias-free ReLU nets in NTK parametrization")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # quick: train widths up to 512 (NTK-1b's protocol goes to 1024: see full)
    "quick": {"train_widths": [128, 256, 512]},
    "full": {"seeds": list(range(10)), "init_widths": [64, 256, 1024, 4096], "train_seeds": [0, 1, 2, 3, 4],
             "train_widths": [128, 256, 512, 1024]},
    # the smallest run of the whole pipeline (contract tests): two small widths each, one seed, 10 steps
    "smoke": {"seeds": [0], "init_widths": [16, 32], "train_widths": [16, 32], "train_seeds": [0], "train_points": 8,
              "data": {"n_train": 8}, "train": {"steps": 10}},
}


@dataclass(frozen=True)
class Kernel:
    """A run's condition: the kernel at initialization (NTK-1a) or over training (NTK-1b), width, seed."""

    stage: Literal["init", "train"]
    width: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.stage},m={self.width},seed={self.seed}"


def plan(cfg: NTKConfig) -> list[Planned]:
    """Kernels at initialization (zero-step runs on the circle), then trained runs on Gaussian points."""
    runs = [Planned(k.label, cfg.run_spec(k.seed, **{"model.width": k.width, "train.steps": 0}), k)
            for k in (Kernel("init", m, s) for m in cfg.init_widths for s in cfg.seeds)]
    runs += [Planned(k.label, cfg.run_spec(k.seed, **{
        "model.width": k.width, "data.sampling": "gaussian", "data.n_train": cfg.train_points, "data.seed": 0}), k)
        for k in (Kernel("train", m, s) for m in cfg.train_widths for s in cfg.train_seeds)]
    return runs


def _kernels(run: RunData) -> dict[str, np.ndarray]:
    return run.artifact("ntk/kernel")


def analyze(cfg: NTKConfig, runs: list[RunData]) -> dict[str, Any]:
    """NTK-1a: error against the analytic kernel per init width; NTK-1b: kernel change per train width."""
    by = by_condition(with_conditions(runs, conditions_of(plan(cfg))))
    depth = len(cfg.model.hidden_widths)
    errors: dict[int, list[float]] = {}
    theta = None
    for m in cfg.init_widths:
        for s in cfg.seeds:
            run = by[Kernel("init", m, s)]
            if run.status != "done":
                continue
            kernel = _kernels(run)["values"][0]
            if theta is None:
                x = run.artifact("ntk/inputs")["values"][0]
                theta, _ = analytic_ntk(x, depth=depth, activation="relu", weight_var=1.0, bias_var=0.0)
            errors.setdefault(m, []).append(relative_kernel_distance(kernel, theta))
    changes: dict[int, list[float]] = {}
    for m in cfg.train_widths:
        for s in cfg.train_seeds:
            run = by[Kernel("train", m, s)]
            if run.status != "done":
                continue
            values = _kernels(run)["values"]
            changes.setdefault(m, []).append(relative_kernel_distance(values[-1], values[0]))
    mean_err = {m: float(np.mean(v)) for m, v in errors.items()}
    mean_change = {m: float(np.mean(v)) for m, v in changes.items()}
    widths_e, widths_c = sorted(mean_err), sorted(mean_change)
    return {
        "error": {str(m): mean_err[m] for m in widths_e},
        "error_per_seed": {str(m): errors[m] for m in widths_e},
        "error_slope": fit_slope(widths_e, [mean_err[m] for m in widths_e]) if len(widths_e) > 1 else None,
        "error_at_largest": mean_err[widths_e[-1]] if widths_e else None,
        "change": {str(m): mean_change[m] for m in widths_c},
        "change_slope": fit_slope(widths_c, [mean_change[m] for m in widths_c]) if len(widths_c) > 1 else None,
        "change_monotone": float(all(mean_change[a] > mean_change[b] for a, b in zip(widths_c, widths_c[1:])))
        if len(widths_c) > 1 else None,
        "theta_00": float(theta[0, 0]) if theta is not None else None,
        "failure": failed_runs(runs),
    }


def verdict(cfg: NTKConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    largest = max(cfg.init_widths)
    slope = summary["error_slope"]
    checks = (
        Check(f"rel. Frobenius error to the analytic NTK at m = {largest} (mean over seeds)",
              summary["error_at_largest"], "<", c.max_error, paper="pilot 0.046 at 4096 (beta = 0.1)"),
        Check("slope of log error against log width (>= -0.70)", slope, ">=", c.slope_low,
              paper="-1/2; pilot -0.50"),
        Check("slope of log error against log width (<= -0.30)", slope, "<=", c.slope_high,
              paper="-1/2; pilot -0.50"),
        Check("kernel change after 200 steps decreases with width (1 = yes)", summary["change_monotone"], "==", 1.0,
              paper="pilot 0.54, 0.34, 0.13, 0.073 at 128 ... 1024"),
        Check("slope of log kernel change against log width", summary["change_slope"], "<=", c.max_change_slope,
              paper="pilot -0.9"),
    )
    return Verdict("ntk-convergence", checks, source=SOURCE, failure=summary["failure"], details={
        "error by width": summary["error"], "kernel change by width": summary["change"],
        "analytic Theta(x0, x0)": summary["theta_00"]})


def _slope(slope: float | None) -> str:
    """A legend's slope, or nothing when a single width has data (e.g. the others failed)."""
    return f" (slope {slope:.2f})" if slope is not None else ""


def figures(cfg: NTKConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    out = {}
    if summary["error"]:
        widths = [int(m) for m in summary["error"]]
        out["error against width"] = plots.curves(
            widths, {f"empirical vs analytic NTK{_slope(summary['error_slope'])}": list(summary["error"].values()),
                     "m^-1/2 reference": [summary["error_at_largest"] * math.sqrt(widths[-1] / m) for m in widths]},
            title="NTK at initialization: relative Frobenius error", xlabel="width m", ylabel="error",
            logx=True, logy=True, markers=True)
    if summary["change"]:
        widths = [int(m) for m in summary["change"]]
        out["kernel change against width"] = plots.curves(
            widths, {f"||K_200 - K_0|| / ||K_0||{_slope(summary['change_slope'])}": list(summary["change"].values())},
            title="NTK change during training", xlabel="width m", ylabel="relative change",
            logx=True, logy=True, markers=True)
    by = by_condition(with_conditions(runs, conditions_of(plan(cfg))))
    run = next((r for k, r in by.items() if k.stage == "init" and r.status == "done"), None)
    if run is not None:
        x = run.artifact("ntk/inputs")["values"][0]
        theta, _ = analytic_ntk(x, depth=len(cfg.model.hidden_widths), activation="relu", weight_var=1.0, bias_var=0.0)
        angle = np.arctan2(x[:, 1], x[:, 0])
        series = {"analytic": theta[0]}
        for m in cfg.init_widths:
            r = by.get(Kernel("init", m, cfg.seeds[0]))
            if r is not None and r.status == "done":
                series[f"m = {m}"] = _kernels(r)["values"][0][0]
        out["Theta(x0, x) on the circle"] = plots.curves(
            angle, series, title="NTK row of x0 = (1, 0) at initialization", xlabel="angle of x (rad)",
            ylabel="Theta(x0, x)", markers=True)
    return out


EXPERIMENT = register(Experiment(
    name="ntk-convergence",
    title="Empirical NTK converges to the analytic kernel and freezes with width",
    source=SOURCE,
    claim="The empirical NTK at initialization approaches the infinite-width kernel with error ~ width^-1/2, "
          "and its change during training shrinks as the width grows.",
    config=NTKConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
