"""Sharpness across widths: consistent progressive sharpening under muP, none under NTP at large width.

Noci, Meterez, Hofmann, Orvieto (2024), "Super Consistency of Neural Network Landscapes and
Learning Rate Transfer", arXiv:2402.17457 (the two-layer linear network on random data with
MSE: top eigenvalues of the Gauss-Newton matrix G for muP vs NTP). Under muP the
learning-rate-normalized sharpness follows nearly the same trajectory at every width and grows
during training (the NTK, hence G, grows with feature learning); under the NTK parametrization
the kernel freezes as the width grows, so the sharpening vanishes.

Setting (docs/specs/sharpness-width.md, the protocol of its pilot): D = 20, P = 200,
x ~ N(0, I_D), y = beta . x with beta ~ N(0, 36/D I) drawn once and fixed across widths and seeds
(``LinearTeacherData(input_dim=20, n_train=200, scale=6.0, seed=0)``); the two-layer linear net
f(x) = c v^T W x / sqrt(D), v, W ~ N(0, 1); full-batch GD for 1500 steps, eta0 = 0.1, widths
N in {64, 256, 1024, 4096}. The protocol's muP (= mean-field for one hidden layer) has c = 1/N and
learning rate eta0 N on both layers; its NTP has c = 1/sqrt(N) and learning rate eta0.

Parametrization mapping (checked by a unit test of the forward function and of one GD step):

* protocol muP = phenolab ``mean_field``: h = W x / sqrt(D) (mult_1 = 1/sqrt(fan_in)), f = v^T h / N
  (mult_2 = 1/fan_in), raw stds 1, learning-rate scales 1 on both layers;
* protocol NTP = phenolab ``ntk``: the same with mult_2 = 1/sqrt(N).

phenolab's ``mup`` with base_width = 1 gives the same function (raw W ~ N(0, 1/D), mult 1,
output mult 1/N) but not the same dynamics: its GD scale N on the raw input weights is, on
W = sqrt(D) W_raw, a learning rate eta N D, D times the protocol's. So muP here is ``mean_field``.

The loss and the factor 1/2. The protocol trains on (1/2P) sum (f - y)^2; phenolab's MSE is
mean (f - y)^2 = (1/P) sum (f - y)^2 without the 1/2, so its gradient is twice the protocol's and
phenolab's ``train.lr`` = eta_spec / 2 gives the same GD trajectory: lr = eta0 N / 2 (muP) and
eta0 / 2 (NTP), set per width by the plan. The Gauss-Newton matrix of phenolab's loss is
G = (2/P) J^T J, whose nonzero spectrum is that of (2/P) K with K = J J^T the P x P empirical NTK
Gram on the training points, so the lr-normalized sharpness

    S_G = lr * lambda_max(G) = lr * 2 * lambda_max(K) / P = eta_spec * lambda_max(K) / P

equals the protocol's. lambda_max(K) is the ``ntk`` probe's ``eig_0`` (points >= P: all training
points). Both parametrizations used here have uniform learning-rate scales (1 per layer), so the
per-layer-lr sharpness lambda_max(P^1/2 H P^1/2) of the protocol is just lr * lambda_max. The
optional ``hessian`` probe gives the full-Hessian S_H = lr * lambda_max(H) of phenolab's loss,
again eta * lambda_max(H) of the protocol's (1/2P) loss (H = G + R; at init R dominates in muP, pilot: 0.134).

Verdict: check SHARP-1 (docs/specs/sharpness-width.md) on S_G at step 0 and at the last step (seed means).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from pydantic import model_validator

from phenolab.config import (
    ExperimentSpec,
    LinearTeacherData,
    MLPSpec,
    PosFloat,
    PosInt,
    ProbeSpec,
    RunSpec,
    Seeds,
    Spec,
    TrainSpec,
)
from phenolab.experiments.analysis import fmt, max_step, mean_or_none
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

SOURCE = ("arXiv:2402.17457 (Noci et al. 2024, super consistency: two-layer linear net, top eigenvalue of G "
          "for muP vs NTP)")

# the protocol's names -> phenolab's parametrization (see the module docstring)
PARAMETRIZATIONS: dict[Literal["muP", "NTP"], str] = {"muP": "mean_field", "NTP": "ntk"}

# the pilot of docs/specs/sharpness-width.md: S_G at init -> end per width
PILOT = {
    "muP": {64: (0.016, 0.263), 256: (0.018, 0.265), 1024: (0.017, 0.264), 4096: (0.017, 0.264)},
    "NTP": {64: (0.016, 0.036), 256: (0.018, 0.025), 1024: (0.017, 0.019), 4096: (0.017, 0.018)},
}
PILOT_NTP_RATIO = {64: 2.29, 256: 1.37, 1024: 1.11, 4096: 1.03}  # the pilot's printed ratios


def run_lr(name: str, eta0: float, width: int) -> float:
    """phenolab's ``train.lr`` for the protocol's learning rate (muP eta0 N, NTP eta0), halved because
    phenolab's MSE has no 1/2."""
    eta = eta0 * width if name == "muP" else eta0
    return eta / 2


class SharpnessCheck(Spec):
    """SHARP-1 thresholds (docs/specs/sharpness-width.md)."""

    mup_max_spread: float = 1.10  # max/min over widths of S_G(end), muP
    mup_min_growth: float = 5.0  # S_G(end)/S_G(0) at every width, muP
    ntp_min_growth_smallest: float = 0.5  # S_G(end)/S_G(0) - 1 at the smallest width, NTP
    ntp_max_growth_largest: float = 0.1  # S_G(end)/S_G(0) - 1 at the largest width, NTP


class SharpnessWidthConfig(ExperimentSpec):
    """The pilot's protocol; ``model.parametrization`` and ``train.lr`` are set per run by the plan
    (muP: mean_field, lr = eta0 N / 2; NTP: ntk, lr = eta0 / 2)."""

    experiment: str = "sharpness-width"
    seeds: Seeds = [0, 1]
    eta0: PosFloat = 0.1
    widths: list[PosInt] = [64, 256, 1024, 4096]
    model: MLPSpec = MLPSpec(width=64, activation="linear", bias=False, parametrization="mean_field")
    data: LinearTeacherData = LinearTeacherData(input_dim=20, n_train=200, scale=6.0, seed=0)
    train: TrainSpec = TrainSpec(optimizer="gd", lr=0.05, steps=1500, probe_every=50)
    probes: list[ProbeSpec] = [ProbeSpec(name="ntk", options={"points": 200, "top": 1}),
                               ProbeSpec(name="hessian", every=750)]
    check: SharpnessCheck = SharpnessCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> SharpnessWidthConfig:
        self.require_probes("ntk")
        if len(set(self.widths)) < 2:
            raise ValueError(f"widths: comparing widths needs at least two different widths, got {self.widths}")
        if self.train.optimizer != "gd":
            raise ValueError(f"train.optimizer: S_G = lr lambda_max(G) is the GD sharpness; must be gd, "
                             f"got {self.train.optimizer!r}")
        ntk = next(p for p in self.probes if p.name == "ntk")
        points = ntk.options.get("points", 256)
        if not isinstance(points, int) or points < self.data.n_train:
            raise ValueError(f"probes: the ntk probe's points ({points}) must be >= data.n_train "
                             f"({self.data.n_train}): lambda_max(G) = 2 lambda_max(K) / P needs K on every "
                             "training point")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # the protocol's widths and steps, 2 seeds, S_G only (no full-Hessian probe): ~30 s of training on one
    # core. Width 4096 is half of it but stays: SHARP-1's NTP bound (growth <= 0.1) is meant for the
    # largest width, and at N = 1024 the growth is still ~0.15 (pilot 0.11)
    "quick": {"probes": [{"name": "ntk", "options": {"points": 200, "top": 1}}]},
    # the protocol's widths with the octaves between them, 5 seeds, S_G every 10 steps (muP sharpens
    # within the first ~50 steps), and the full-Hessian S_H at steps 0, 750 and 1500 (SHARP-1's
    # optional G-vs-R check)
    "full": {"seeds": [0, 1, 2, 3, 4], "widths": [64, 128, 256, 512, 1024, 2048, 4096],
             "train": {"probe_every": 10}},
    # the smallest run of the whole pipeline (contract tests): two small widths, one seed, 20 steps
    "smoke": {"seeds": [0], "widths": [8, 16], "data": {"n_train": 20}, "train": {"steps": 20, "probe_every": 10},
              "probes": [{"name": "ntk", "options": {"points": 20, "top": 1}}]},
}


def label(name: str, width: int, seed: int) -> str:
    return f"{name},N={width},seed={seed}"


@dataclass(frozen=True)
class Width:
    """A run's condition: the protocol's parametrization (muP or NTP), width N and seed."""

    name: Literal["muP", "NTP"]
    width: int
    seed: int


def plan(cfg: SharpnessWidthConfig) -> list[Planned]:
    """One run per parametrization, width and seed; lr follows the parametrization and the width."""
    return [Planned(label(w.name, w.width, w.seed),
                    cfg.run_spec(w.seed, **{"model.width": w.width, "model.parametrization": PARAMETRIZATIONS[w.name],
                                            "train.lr": run_lr(w.name, cfg.eta0, w.width)}), w)
            for w in (Width(name, width, seed) for name in PARAMETRIZATIONS for width in sorted(set(cfg.widths))
                      for seed in cfg.seeds)]


def sharpness_series(run: RunData, n_points: int) -> Any:
    """S_G(t) = lr * 2 * eig_0(K_t) / P of one run (a pandas Series over probe steps)."""
    return cast(RunSpec, run.spec).train.lr * 2.0 * run.series("ntk/eig_0") / n_points


def analyze(cfg: SharpnessWidthConfig, runs: list[RunData]) -> dict[str, Any]:
    """Per parametrization and width: S_G at step 0 and at the last step, their ratio (means over
    seeds), the full-Hessian S_H at its probe steps, and the S_G curves for the figures."""
    by_width = by_condition(with_conditions(runs, conditions_of(plan(cfg))))
    widths = sorted(set(cfg.widths))
    n_points = min(int(next(p for p in cfg.probes if p.name == "ntk").options.get("points", 256)), cfg.data.n_train)
    per: dict[str, dict[str, Any]] = {}
    for name in PARAMETRIZATIONS:
        rows: dict[str, Any] = {}
        for width in widths:
            s0s, s1s, ratios, curves, losses = [], [], [], [], []
            hess: dict[int, list[float]] = {}
            for seed in cfg.seeds:
                run = by_width[Width(name, width, seed)]
                if run.status != "done":
                    continue
                s = sharpness_series(run, n_points)
                if len(s) < 2:
                    continue
                s0s.append(float(s.iloc[0]))
                s1s.append(float(s.iloc[-1]))
                ratios.append(float(s.iloc[-1] / s.iloc[0]))
                curves.append(s)
                top = run.series("hessian/top_0")
                for step, value in top.items():
                    hess.setdefault(int(step), []).append(cast(RunSpec, run.spec).train.lr * float(value))
                loss = run.series("loss")
                losses.append(float(loss.iloc[-1]) if len(loss) else math.nan)
            ratio = mean_or_none(ratios)
            steps = curves[0].index.to_numpy() if curves else np.array([])
            rows[str(width)] = {
                "lr": run_lr(name, cfg.eta0, width),
                "S_G_init": mean_or_none(s0s), "S_G_end": mean_or_none(s1s), "ratio": ratio,
                "growth": None if ratio is None else ratio - 1.0,
                "ratio_per_seed": ratios, "S_G_end_per_seed": s1s,
                "S_H": {str(k): mean_or_none(v) for k, v in sorted(hess.items())},
                "final_loss": mean_or_none(losses),
                "curve_steps": [int(t) for t in steps],
                "curve": ([float(v) for v in np.mean([c.reindex(steps).to_numpy() for c in curves], axis=0)]
                          if curves else []),
            }
        per[name] = rows
    return {"widths": widths, "per": per, "points": n_points, **sharp1_numbers(widths, per),
            "failure": failed_runs(runs)}


def sharp1_numbers(widths: list[int], per: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The quantities SHARP-1 compares, from per-width ``S_G_end``, ``ratio`` and ``growth`` (None
    where a width has no finished run): muP spread and smallest ratio; NTP growth at the smallest
    and the largest width and its largest increase from one width to the next."""
    mup_end = [per["muP"][str(w)]["S_G_end"] for w in widths]
    mup_ratio = [per["muP"][str(w)]["ratio"] for w in widths]
    ntp_growth = [per["NTP"][str(w)]["growth"] for w in widths]
    return {
        "mup_spread": (max(mup_end) / min(mup_end)) if all(v is not None and v > 0 for v in mup_end) else None,
        "mup_min_ratio": min(mup_ratio) if all(v is not None for v in mup_ratio) else None,
        "ntp_growth_smallest": ntp_growth[0],
        "ntp_growth_largest": ntp_growth[-1],
        # < 0: the growth decreases strictly from each width to the next
        "ntp_max_increase": max_step(ntp_growth),
    }


def _pilot_ratio(name: str, width: int) -> str:
    if width not in PILOT[name]:
        return ""
    s0, s1 = PILOT[name][width]
    ratio = PILOT_NTP_RATIO[width] if name == "NTP" else s1 / s0  # NTP: the pilot's printed ratio
    return f"pilot N={width}: {s0:.3f} -> {s1:.3f} (x{ratio:.2f})"


def verdict(cfg: SharpnessWidthConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    widths = summary["widths"]
    small, large = widths[0], widths[-1]
    per = summary["per"]
    checks = [
        Check(f"muP: max/min over widths {widths} of S_G(end)", summary["mup_spread"], "<=", c.mup_max_spread,
              paper="pilot S_G(end) 0.263, 0.265, 0.264, 0.264 at N = 64..4096 (spread < 1 %)"),
    ]
    for width in widths:
        checks.append(Check(f"muP: S_G(end)/S_G(0) at N={width}", per["muP"][str(width)]["ratio"], ">=",
                            c.mup_min_growth, paper=_pilot_ratio("muP", width)))
    checks += [
        Check(f"NTP: largest increase of S_G(end)/S_G(0) - 1 from one width to the next (widths {widths}; "
              "< 0: decreasing in N)", summary["ntp_max_increase"], "<", 0.0,
              paper="pilot growth 1.29, 0.37, 0.11, 0.03 at N = 64..4096"),
        Check(f"NTP: S_G(end)/S_G(0) - 1 at the smallest width N={small}", summary["ntp_growth_smallest"], ">=",
              c.ntp_min_growth_smallest,
              paper=(f"pilot growth {PILOT_NTP_RATIO[small] - 1:.2f}; {_pilot_ratio('NTP', small)}"
                     if small in PILOT_NTP_RATIO else "")),
        Check(f"NTP: S_G(end)/S_G(0) - 1 at the largest width N={large}", summary["ntp_growth_largest"], "<=",
              c.ntp_max_growth_largest,
              paper=(f"pilot growth {PILOT_NTP_RATIO[large] - 1:.2f}; {_pilot_ratio('NTP', large)}"
                     if large in PILOT_NTP_RATIO else "")),
    ]
    details: dict[str, Any] = {"S_G = lr * 2 * eig_0(NTK) / P, init -> end (seed means)": {
        name: {f"N={w}": f"{fmt(per[name][str(w)]['S_G_init'])} -> {fmt(per[name][str(w)]['S_G_end'])} "
                         f"(x{fmt(per[name][str(w)]['ratio'])})" for w in widths}
        for name in PARAMETRIZATIONS}}
    if any(per[name][str(w)]["S_H"] for name in PARAMETRIZATIONS for w in widths):
        details["full-Hessian S_H = lr * lambda_max(H) at its probe steps (seed means; pilot: 0.134 at init, muP)"] = {
            name: {f"N={w}": {f"step {k}": fmt(v) for k, v in per[name][str(w)]["S_H"].items()} for w in widths}
            for name in PARAMETRIZATIONS}
    details["final training loss (seed means)"] = {
        name: {f"N={w}": fmt(per[name][str(w)]["final_loss"]) for w in widths} for name in PARAMETRIZATIONS}
    details["parametrizations"] = {"muP": "phenolab mean_field, lr = eta0 N / 2",
                                   "NTP": "phenolab ntk, lr = eta0 / 2"}
    return Verdict("sharpness-width", tuple(checks), source=SOURCE, failure=summary["failure"], details=details)


def figures(cfg: SharpnessWidthConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    widths = summary["widths"]
    out: dict[str, Any] = {}
    for name, param in PARAMETRIZATIONS.items():
        rows = [summary["per"][name][str(w)] for w in widths]
        steps = next((r["curve_steps"] for r in rows if r["curve_steps"]), None)
        if steps is None:
            continue
        series = {f"N={w}": r["curve"] for w, r in zip(widths, rows) if r["curve_steps"] == steps}
        # log step axis: muP sharpens within the first ~50 steps, then stays
        out[f"S_G over training, {name}"] = plots.curves(
            [t + 1 for t in steps], series, title=f"{name} ({param}): lr-normalized Gauss-Newton sharpness (seed mean)",
            ylabel="$S_G = \\eta\\,\\lambda_{max}(G)$", xlabel="training step + 1", logx=True)
    ratios: dict[str, list[float]] = {
        name: [summary["per"][name][str(w)]["ratio"] if summary["per"][name][str(w)]["ratio"] is not None
               else math.nan for w in widths] for name in PARAMETRIZATIONS}
    if not any(math.isfinite(v) and v > 0 for values in ratios.values() for v in values):
        return out  # no run finished: nothing to draw on log axes
    out["S_G(end)/S_G(0) against width"] = plots.curves(
        widths, ratios, title="progressive sharpening against width", xlabel="width N",
        ylabel="$S_G(end) / S_G(0)$", logx=True, logy=True, markers=True,
        hlines={"muP bound": cfg.check.mup_min_growth, "NTP bound at largest N": 1 + cfg.check.ntp_max_growth_largest})
    return out


EXPERIMENT = register(Experiment(
    name="sharpness-width",
    title="Sharpness across widths: super consistency under muP, no sharpening under NTP",
    source=SOURCE,
    claim="Under muP the (Gauss-Newton) sharpness follows the same trajectory at every width and sharpens "
          "progressively; under NTK parametrization the sharpening vanishes as width grows.",
    config=SharpnessWidthConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
