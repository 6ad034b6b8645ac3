"""The Hessian of the training loss after training: a bulk near zero and a few outliers.

Sagun, Evci, Guney, Dauphin, Bottou (2017), arXiv:1706.04454: for over-parametrized networks
the spectrum of the training-loss Hessian is a bulk concentrated near zero plus a few outliers;
adding parameters (width) scales the bulk, the data (e.g. the number of classes) move the
outliers. "About k outliers for k classes" is the common reading (recalled; the paper's experiments were
not read), kept here as a reported, non-blocking number.

Setting (docs/specs/hessian-outliers.md, a protocol choice): Gaussian mixture d = 10, k in {2, 4, 8} classes (centres
N(0, 1.5^2 I), points N(centre, I)), n = 1000; MLP 10-16-16-k ReLU, softmax cross-entropy,
full-batch GD lr 0.1 for 2000 steps; the same with doubled hidden widths (32). The full
Hessian (float64, from n HVPs on the basis vectors; the probe's ``spectrum=True``) at the last
step. Checks HESS-1 (bulk: |lambda| <= 0.01 lambda_max for >= 90 % of the eigenvalues) and
HESS-2 (provisional; outliers are eigenvalues > 0.05 lambda_max: their mean count
is non-decreasing in k, moves by <= 1 when the width doubles, while the near-zero eigenvalues
grow by >= 50 % of the added parameters).

Finding (full preset = the protocol's setting): HESS-1 holds (bulk fraction >= 0.92), the outlier
count rises with k and the near-zero count grows by 0.99 of the added parameters, but the count
moves by 2.33 (k = 8) when the width doubles, so the provisional HESS-2 fails there; the quick
preset (half the steps) sits exactly at its limit (1.0). Counts are also well above k (k = 4: 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, cast

import numpy as np
from pydantic import Field, model_validator

from phenolab.config import ExperimentSpec, GaussianMixtureData, MLPSpec, ProbeSpec, Seeds, Spec, TrainSpec
from phenolab.experiments.analysis import fmt, mean_or_none, min_step
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
from phenolab.probes.hessian import SPECTRUM_MAX_PARAMS
from phenolab.report import plots

SOURCE = "arXiv:1706.04454 (Sagun et al. 2017, Hessian spectrum: bulk near zero and outliers)"
PILOT = ("pilot of docs/specs/hessian-outliers.md (k in 2, 3, 5, 8; 2 seeds): bulk fraction 0.95-0.996; "
         "outlier counts noisy (largest-ratio rule: k=2: 1, 1; k=3: 3, 2; k=5: 4, 3; k=8: 2, 1)")


class HessianCheck(Spec):
    """docs/specs/hessian-outliers.md: HESS-1 and the provisional HESS-2."""

    bulk_rel: float = 0.01  # near zero: |lambda| <= bulk_rel * lambda_max
    min_bulk_fraction: float = 0.9  # HESS-1, every run
    outlier_rel: float = 0.05  # outlier: lambda > outlier_rel * lambda_max
    max_width_change: float = 1.0  # HESS-2: |mean count(wide) - mean count(base)| per k
    min_bulk_growth: float = 0.5  # HESS-2: added near-zero eigenvalues / added parameters


class HessianOutliersConfig(ExperimentSpec):
    experiment: str = "hessian-outliers"
    seeds: Seeds = [0, 1, 2]
    classes: list[Annotated[int, Field(ge=2)]] = [2, 4, 8]
    width_factor: Annotated[int, Field(ge=2)] = 2  # the wide networks: every hidden width times this
    model: MLPSpec = MLPSpec(widths=[16, 16], activation="relu")
    data: GaussianMixtureData = GaussianMixtureData(input_dim=10, spread=1.5, n_train=1000, one_hot=False)
    train: TrainSpec = TrainSpec(optimizer="gd", lr=0.1, steps=2000, loss="cross_entropy", probe_every=10**9)
    probes: list[ProbeSpec] = [ProbeSpec(name="hessian", options={"spectrum": True, "loss": "cross_entropy"})]
    check: HessianCheck = HessianCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> HessianOutliersConfig:
        self.require_probes("hessian")
        probe = next(p for p in self.probes if p.name == "hessian")
        if not probe.options.get("spectrum"):
            raise ValueError("probes: hessian-outliers needs the hessian probe with options.spectrum=true "
                             f"(the full spectrum), got options {probe.options}")
        probe_loss = probe.options.get("loss", "cross_entropy")  # the probe's default on classification
        if probe_loss != self.train.loss.kind:
            raise ValueError(f"probes: the hessian probe's options.loss ({probe_loss!r}) must be the training loss "
                             f"train.loss ({self.train.loss.kind!r})")
        if len(self.classes) < 2 or any(b <= a for a, b in zip(self.classes, self.classes[1:])):
            raise ValueError(f"classes: give at least two class counts in increasing order, got {self.classes}")
        widest = param_count(self.model, self.data.input_dim, max(self.classes), self.width_factor)
        if widest > SPECTRUM_MAX_PARAMS:
            raise ValueError(f"width_factor: the wide network for k = {max(self.classes)} has {widest} parameters; "
                             f"the dense Hessian takes at most {SPECTRUM_MAX_PARAMS}")
        return self

    def widths(self, wide: bool) -> list[int]:
        return [w * (self.width_factor if wide else 1) for w in self.model.hidden_widths]


def param_count(model: MLPSpec, input_dim: int, classes: int, factor: int = 1) -> int:
    """Trainable parameters of the MLP `model` (hidden widths times `factor`) from input_dim to classes."""
    sizes = [model.input_dim or input_dim, *(w * factor for w in model.hidden_widths), model.output_dim or classes]
    output_bias = model.bias if model.output_bias is None else model.output_bias
    biases = [model.bias] * (len(sizes) - 2) + [output_bias]
    return sum(a * b + (b if bias else 0) for a, b, bias in zip(sizes, sizes[1:], biases))


PRESETS = {
    # the protocol's setting cut to 2 seeds (of 3) and 1000 GD steps (of 2000), to stay under a minute
    # on 2 cores: the dense float64 Hessians of the width-32 nets (~1600 HVPs each, at step 0 and
    # at the last step) are two thirds of the time, training the rest.
    # What HESS-2's provisional width rule gives (max over k of |change of the mean outlier
    # count| when the width doubles; need <= 1): quick 1.0 (at the limit; 3 seeds at 1000 steps:
    # 1.0), 2 seeds at 2000 steps 3.0, full 2.33 (FAIL). The relative spectra decay smoothly through
    # the 0.05 cut (no gap after the top few eigenvalues), and the wider nets put more eigenvalues
    # in that tail the longer they train: the fixed-cut count is not width-invariant here.
    # The quick preset skips the spectrum at initialization (context only, not judged): half the
    # Hessians. Measured on one thread of a busy 2-core machine: ~66 s CPU with it, ~45 s without.
    "quick": {"seeds": [0, 1], "train": {"steps": 1000},
              "probes": [{"name": "hessian", "start": 1, "options": {"spectrum": True, "loss": "cross_entropy"}}]},
    "full": {},  # the protocol's setting: 3 seeds, 2000 steps
    # the smallest run of the whole pipeline (contract tests): one seed, 2 and 3 classes, widths 4, 20 steps
    "smoke": {"seeds": [0], "classes": [2, 3], "model": {"widths": [4, 4]}, "data": {"n_train": 60},
              "train": {"steps": 20}},
}


def label(k: int, width: int, seed: int) -> str:
    """A run's label; `width` is its first hidden width."""
    return f"k={k},width={width},seed={seed}"


@dataclass(frozen=True)
class Classes:
    """A run's condition: class count k, first hidden width and seed."""

    k: int
    width: int
    seed: int


def plan(cfg: HessianOutliersConfig) -> list[Planned]:
    """One run per class count, width (base and wide) and seed; data and init follow the seed."""
    return [Planned(label(k, cfg.widths(wide)[0], seed),
                    cfg.run_spec(seed, **{"data.classes": k, "model.widths": cfg.widths(wide), "model.width": None,
                                          "model.depth": None}), Classes(k, cfg.widths(wide)[0], seed))
            for k in cfg.classes for wide in (False, True) for seed in cfg.seeds]


def _runs(cfg: HessianOutliersConfig, runs: list[RunData]) -> dict[Classes, RunData]:
    return by_condition(with_conditions(runs, conditions_of(plan(cfg))))


# ----------------------------------------------------------------------------- counting
def spectrum_counts(eigenvalues: np.ndarray, bulk_rel: float = 0.01, outlier_rel: float = 0.05) -> dict[str, float]:
    """Counts in one Hessian spectrum, relative to lambda_max (its largest eigenvalue):
    ``near_zero`` = #{|lambda| <= bulk_rel lambda_max}, ``bulk_fraction`` = near_zero / n,
    ``outliers`` = #{lambda > outlier_rel lambda_max} (lambda_max itself included), ``params`` = n.
    A spectrum whose lambda_max is not positive gives NaN counts (no scale to compare with)."""
    ev = np.asarray(eigenvalues, dtype=np.float64).ravel()
    lam = float(ev.max()) if ev.size else math.nan
    if not (math.isfinite(lam) and lam > 0):
        return {"params": ev.size, "lambda_max": lam, "near_zero": math.nan, "bulk_fraction": math.nan,
                "outliers": math.nan}
    near = int(np.sum(np.abs(ev) <= bulk_rel * lam))
    return {"params": ev.size, "lambda_max": lam, "near_zero": near, "bulk_fraction": near / ev.size,
            "outliers": int(np.sum(ev > outlier_rel * lam))}


def _mean(values: list[float]) -> float | None:
    return mean_or_none(values, all_finite=True)


def _spectra(run: RunData) -> tuple[np.ndarray | None, np.ndarray] | None:
    """(spectrum at initialization or None if the probe skipped it, spectrum after the last
    step), if the run stored them."""
    if run.status != "done":
        return None
    art = run.artifact("hessian/spectrum")
    initial = art["values"][0] if len(art["steps"]) > 1 and int(art["steps"][0]) == 0 else None
    return initial, art["values"][-1]


def analyze(cfg: HessianOutliersConfig, runs: list[RunData]) -> dict[str, Any]:
    """Per run the counts of its last-step spectrum (and, for context, of its initial one); per
    (k, width) the means over seeds; the HESS-1 and HESS-2 numbers."""
    c = cfg.check
    by_classes = _runs(cfg, runs)
    base_w, wide_w = cfg.widths(False)[0], cfg.widths(True)[0]
    per_run: list[dict[str, Any]] = []
    groups: dict[tuple[int, int], dict[str, Any]] = {}
    for k in cfg.classes:
        for width in (base_w, wide_w):
            rows = []
            for seed in cfg.seeds:
                run = by_classes[Classes(k, width, seed)]
                spectra = _spectra(run)
                counts = spectrum_counts(spectra[1], c.bulk_rel, c.outlier_rel) if spectra else \
                    {"params": math.nan, "lambda_max": math.nan, "near_zero": math.nan, "bulk_fraction": math.nan,
                     "outliers": math.nan}
                init = spectrum_counts(spectra[0], c.bulk_rel, c.outlier_rel) if spectra and spectra[0] is not None \
                    else {}
                loss = run.series("loss")
                row = {"k": k, "width": width, "seed": seed, **counts,
                       "final_loss": float(loss.iloc[-1]) if len(loss) else math.nan,
                       "init_outliers": init.get("outliers", math.nan),
                       "init_bulk_fraction": init.get("bulk_fraction", math.nan)}
                rows.append(row)
                per_run.append(row)
            groups[(k, width)] = {
                "k": k, "width": width,
                "outliers": [r["outliers"] for r in rows],
                "mean_outliers": _mean([r["outliers"] for r in rows]),
                "mean_near_zero": _mean([r["near_zero"] for r in rows]),
                "params": param_count(cfg.model, cfg.data.input_dim, k, cfg.width_factor if width == wide_w else 1),
                "min_bulk_fraction": _min_or_none([r["bulk_fraction"] for r in rows]),
                "bulk_fractions": [r["bulk_fraction"] for r in rows],
            }
    bulk_min = {k: _min_or_none([groups[(k, w)]["min_bulk_fraction"] for w in (base_w, wide_w)])
                for k in cfg.classes}
    base_means = [groups[(k, base_w)]["mean_outliers"] for k in cfg.classes]
    width_change = {k: _diff(groups[(k, wide_w)]["mean_outliers"], groups[(k, base_w)]["mean_outliers"])
                    for k in cfg.classes}
    growth = {}
    for k in cfg.classes:
        dz = _diff(groups[(k, wide_w)]["mean_near_zero"], groups[(k, base_w)]["mean_near_zero"])
        dp = _diff(groups[(k, wide_w)]["params"], groups[(k, base_w)]["params"])
        growth[k] = dz / dp if dz is not None and dp else None
    return {
        "base_width": base_w, "wide_width": wide_w,
        "groups": [groups[(k, w)] for k in cfg.classes for w in (base_w, wide_w)],
        "runs_table": per_run,
        "bulk_fraction_min": {str(k): v for k, v in bulk_min.items()},
        "mean_outliers": {f"k={k},width={w}": groups[(k, w)]["mean_outliers"] for k in cfg.classes
                          for w in (base_w, wide_w)},
        "outliers_min_increase": min_step(base_means),
        "width_change": {str(k): v for k, v in width_change.items()},
        "width_change_max_abs": _max_abs(list(width_change.values())),
        "bulk_growth": {str(k): v for k, v in growth.items()},
        "bulk_growth_min": _min_or_none(list(growth.values())),
        "failure": failed_runs(runs),
    }


def _diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return float(a - b)


def _min_or_none(values: list[float | None]) -> float | None:
    if any(v is None or not math.isfinite(v) for v in values) or not values:
        return None
    return float(min(cast(list[float], values)))  # no None left (the test above)


def _max_abs(values: list[float | None]) -> float | None:
    if any(v is None for v in values) or not values:
        return None
    return float(max(abs(v) for v in cast(list[float], values)))  # no None left (the test above)


def verdict(cfg: HessianOutliersConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    base_w, wide_w = summary["base_width"], summary["wide_width"]
    n_seeds = len(cfg.seeds)
    checks = [
        Check(f"HESS-1: fraction of eigenvalues with |lambda| <= {c.bulk_rel:g} lambda_max, k={k} "
              f"(min over {n_seeds} seeds x widths {base_w}, {wide_w})", summary["bulk_fraction_min"][str(k)], ">=",
              c.min_bulk_fraction, paper="pilot 0.95-0.996 (docs/specs/hessian-outliers.md)")
        for k in cfg.classes
    ]
    counts = ", ".join(f"k={k}: {summary['mean_outliers'][f'k={k},width={base_w}']:.3g}"
                       if summary["mean_outliers"][f"k={k},width={base_w}"] is not None else f"k={k}: n/a"
                       for k in cfg.classes)
    checks += [
        Check(f"HESS-2: mean outlier count (lambda > {c.outlier_rel:g} lambda_max, width {base_w}) is non-decreasing "
              f"in k: smallest increase ({counts})", summary["outliers_min_increase"], ">=", 0.0,
              paper="provisional; outliers are data-driven"),
        Check(f"HESS-2: |change of the mean outlier count| when the width doubles {base_w} -> {wide_w} (max over k)",
              summary["width_change_max_abs"], "<=", c.max_width_change,
              paper="provisional; width only scales the bulk"),
        Check(f"HESS-2: added near-zero eigenvalues / added parameters, width {base_w} -> {wide_w} (min over k)",
              summary["bulk_growth_min"], ">=", c.min_bulk_growth, paper="provisional; the bulk grows with parameters"),
    ]
    groups = {(g["k"], g["width"]): g for g in summary["groups"]}
    within = {}
    for k in cfg.classes:
        for w in (base_w, wide_w):
            g = groups[(k, w)]
            mean = g["mean_outliers"]
            ok = mean is not None and k - 1 <= mean <= k + 1
            seeds = ", ".join(fmt(v) for v in g["outliers"])
            within[f"k={k}, width {w}"] = (f"mean {mean:.3g} (seeds: {seeds}) -> {'in' if ok else 'not in'} "
                                           f"[{k - 1}, {k + 1}]" if mean is not None else "n/a")
    return Verdict("hessian-outliers", tuple(checks), source=SOURCE, failure=summary["failure"], details={
        "outlier count in [k-1, k+1] (reported, non-blocking; the recalled '#outliers = k')": within,
        "per (k, width): min bulk fraction, mean near-zero, parameters": {
            f"k={g['k']}, width {g['width']}": {"min_bulk_fraction": g["min_bulk_fraction"],
                                                "mean_near_zero": g["mean_near_zero"], "params": g["params"]}
            for g in summary["groups"]},
        "change of the mean outlier count with width, per k": summary["width_change"],
        "near-zero growth / parameter growth, per k": summary["bulk_growth"],
        "pilot": PILOT,
    })


def figures(cfg: HessianOutliersConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    c = cfg.check
    by_classes = _runs(cfg, runs)
    base_w, wide_w = summary["base_width"], summary["wide_width"]
    seed = cfg.seeds[0]
    out = {}
    for width in (base_w, wide_w):
        spectra = {}
        for k in cfg.classes:
            got = _spectra(by_classes[Classes(k, width, seed)])
            if got is not None and got[1].max() > 0:
                spectra[f"k={k} ({got[1].size} parameters)"] = got[1] / got[1].max()
        if spectra:
            out[f"Hessian spectrum per k, width {width} (seed {seed})"] = plots.ranked_spectra(
                spectra, title=f"Hessian eigenvalues after training, width {width}, seed {seed}",
                ylabel="|lambda| / lambda_max", ymin=1e-8,
                hlines={"outlier cut": c.outlier_rel, "bulk cut": c.bulk_rel})
    groups = {(g["k"], g["width"]): g for g in summary["groups"]}

    def series(key: str, width: int) -> list[float]:
        return [groups[(k, width)][key] if groups[(k, width)][key] is not None else math.nan for k in cfg.classes]

    out["outlier count against k"] = plots.curves(
        cfg.classes, {f"width {base_w}": series("mean_outliers", base_w),
                      f"width {wide_w}": series("mean_outliers", wide_w),
                      "k (the recalled '#outliers = k')": [float(k) for k in cfg.classes]},
        title=f"eigenvalues > {c.outlier_rel:g} lambda_max (mean over {len(cfg.seeds)} seeds)",
        xlabel="classes k", ylabel="outliers", markers=True)
    out["near-zero eigenvalues and parameters against k"] = plots.curves(
        cfg.classes, {f"near zero, width {base_w}": series("mean_near_zero", base_w),
                      f"parameters, width {base_w}": series("params", base_w),
                      f"near zero, width {wide_w}": series("mean_near_zero", wide_w),
                      f"parameters, width {wide_w}": series("params", wide_w)},
        title=f"near-zero eigenvalues (|lambda| <= {c.bulk_rel:g} lambda_max) and parameters",
        xlabel="classes k", ylabel="eigenvalues", markers=True)
    return out


EXPERIMENT = register(Experiment(
    name="hessian-outliers",
    title="Hessian spectrum after training: a bulk near zero and a few outliers",
    source=SOURCE,
    claim="After training, the Hessian of the training loss has most eigenvalues near zero and a few outliers "
          "whose number grows with the number of classes, while the bulk grows with the parameter count (width).",
    config=HessianOutliersConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
