"""Local linear recovery: the optimistic sample size of a tanh network is the model rank of its
target, k (d + 1) for a k-neuron two-layer target at any width, and at most the narrower net's
parameter count for a deep target; the linearized model recovers the target from a generic
sample exactly when n >= that rank.

Zhang, Zhang, Zhang & Bai, "Local Linear Recovery Guarantee of Deep Neural Networks at
Overparameterization" (JMLR 26(69), 2025; arXiv:2406.18035; tables/figures of optimistic sample
sizes vs architecture, numbers not verified). Setup and checks LLR-1 to LLR-4: docs/specs/recovery.md, a
numerical theorem check without training.

At a parameter point theta* with f_theta* = f*, f* is locally linearly recoverable (LLR) from
inputs S iff ker J_S(theta*) = ker J(theta*), i.e. rank J_S = rank J = r (`phenolab.probes.rank`),
with J the Jacobian of theta -> f_theta on a large Gaussian population and J_S its rows on the
n sample inputs. Parameter points (built here, by zero padding a narrow net into the wide one):

- two-layer tanh, no bias, f = sum_k a_k tanh(w_k . x), d = 3, width m = 8 (also 4 and 16):
  a target of k random neurons (w_j ~ N(0, I_d), a_j ~ N(0, 1)), the other neurons a = 0, w = 0.
  Predicted r = k (d + 1) = 4, 8, 12 at every width ("free in width");
- the same one-neuron function with all m neurons aligned (w_k = w*, sum_k a_k = a*): r = d + 1;
- three-layer tanh, f = a^T tanh(W_2 tanh(W_1 x)), widths (6, 6) (M = 60 parameters), narrow
  targets (k_1, k_2) with N(0, 1) weights: r <= M' = k_1 d + k_2 k_1 + k_2 = 5, 9, 12, 17; a
  generic wide point (the default initialization) has r = M = 60.

For each target the LLR indicator 1[rank J_S = r] is measured on `draws` random samples of every
size n = 1 .. r + 2; the theorem (analytic model, almost every sample) predicts probability 0 for
n < r and 1 for n >= r. Ranks are numerical, #{sigma_i > rtol sigma_max} (rtol = 1e-8); each is
reported with the gap log10 sigma_r / sigma_{r+1} that justifies it, and the sample Jacobians
with log10 sigma_rank / sigma_max (how far the smallest kept singular value is above rtol).

Config ``seeds`` are target draws: every computation is repeated per seed and the checks hold
for all of them.
"""

from __future__ import annotations

import math
from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from phenolab.config import MLPSpec, PosInt, Spec
from phenolab.experiments.base import Computation, Experiment, MeasureSpec, RunData, no_training, params_from, register
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.models import MLP, build_model
from phenolab.probes.rank import jacobian, numerical_rank
from phenolab.report import plots
from phenolab.train.seeding import generator

SOURCE = "arXiv:2406.18035 (optimistic sample sizes of two-layer and deep tanh nets; numbers not verified)"
NAME = "local-linear-recovery"
DTYPE = torch.float64


# ----------------------------------------------------------------------------- parameter points
def tanh_net(d: int, widths: list[int], seed: int, layers: list[torch.Tensor] | None = None) -> nn.Module:
    """A tanh MLP without biases, f = a^T tanh(W_L ... tanh(W_1 x)), float64. ``layers``: its
    weights, each zero-padded into the top-left corner of the (out, in) weight matrix; None: the
    default initialization (std 1/sqrt(fan-in)) drawn from seed's ``generic`` stream."""
    model = cast(MLP, build_model(MLPSpec(widths=list(widths), bias=False, activation="tanh"), d, 1,
                                  generator(seed, "generic"), dtype=DTYPE))
    if layers is not None:
        with torch.no_grad():
            for layer, w in zip(model.layers, layers):
                layer.weight.zero_()
                layer.weight[: w.shape[0], : w.shape[1]] = w
    return model


def narrow_layers(d: int, narrow: list[int], seed: int) -> list[torch.Tensor]:
    """Random weights N(0, 1) of a net with hidden widths `narrow` (input d, one output); the same
    draw for a given (d, narrow, seed) whatever wide net it is embedded in."""
    g = generator(seed, f"narrow target {narrow}")
    sizes = [d, *narrow, 1]
    return [torch.randn(o, i, generator=g, dtype=DTYPE) for i, o in zip(sizes, sizes[1:])]


def aligned_layers(d: int, width: int, seed: int) -> list[torch.Tensor]:
    """The one-neuron target a* tanh(w* . x) of `narrow_layers(d, [1], seed)` represented by all
    `width` neurons: w_k = w*, a_k = a*/m + z_k - mean(z) with z ~ N(0, 1), so sum_k a_k = a*."""
    w_star, a_star = narrow_layers(d, [1], seed)
    z = torch.randn(1, width, generator=generator(seed, "aligned split"), dtype=DTYPE)
    a = a_star / width + z - z.mean()
    return [w_star.expand(width, d).clone(), a]


def narrow_parameter_count(d: int, narrow: list[int]) -> int:
    """M' = k_1 d + k_2 k_1 + ... + k_L (no biases, one output)."""
    sizes = [d, *narrow, 1]
    return sum(i * o for i, o in zip(sizes, sizes[1:]))


class PointParams(Spec):
    """A parameter point of a wide tanh net of hidden `widths` on d inputs: ``narrow`` (the target
    with hidden widths `narrow` zero-padded into `widths`), ``aligned`` (two-layer only) or
    ``generic``; weights drawn from `seed`."""

    d: PosInt
    widths: list[PosInt] = Field(min_length=1)
    point: Literal["narrow", "aligned", "generic"]
    narrow: list[PosInt] = []
    seed: int


class RankParams(PointParams):
    """`rank_and_llr`: the population Jacobian's size, `draws` samples of each size n = 1 .. r +
    `extra` (draws = 0: the rank only), the rank threshold `rtol`."""

    population: PosInt
    draws: int = Field(ge=0)
    extra: PosInt = 2
    rtol: float = Field(gt=0, lt=1)


def build_point(params: PointParams) -> nn.Module:
    """The wide net at the parameter point that params describe (`PointParams`)."""
    d, widths, seed, point = params.d, params.widths, params.seed, params.point
    if point == "narrow":
        return tanh_net(d, widths, seed, narrow_layers(d, params.narrow, seed))
    if point == "aligned":
        if len(widths) != 1:
            raise ValueError(f"point 'aligned' is a two-layer construction; got hidden widths {widths}")
        return tanh_net(d, widths, seed, aligned_layers(d, widths[0], seed))
    if point == "generic":
        return tanh_net(d, widths, seed)
    raise ValueError(f"point: must be narrow, aligned or generic, got {point!r}")


# ----------------------------------------------------------------------------- the computation
def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def rank_and_llr(params: RankParams) -> dict[str, Any]:
    """Model rank r = rank J(theta*) on `population` N(0, I_d) inputs, and the LLR indicator
    1[rank J_S = r] on `draws` random samples of each size n = 1 .. r + extra (draws = 0: the rank only).

    Returns rank, parameters,
    log10_gap (log10 sigma_r / sigma_{r+1}; inf when nothing lies below the threshold),
    log10_kept (log10 sigma_r / sigma_max), log10_dropped (log10 sigma_{r+1} / sigma_max; -inf when
    none), singular_values; with draws > 0 also sizes (n,), sample_ranks (n, draws), llr (n,)
    the fraction of draws with rank J_S = r, and sample_log10_kept (n, draws).
    """
    model = build_point(params)
    d, seed, rtol, draws, extra = params.d, params.seed, params.rtol, params.draws, params.extra
    population = torch.randn(params.population, d, generator=generator(seed, "population"), dtype=DTYPE)
    pop = numerical_rank(jacobian(model, population), rtol=rtol)
    r, s = pop.rank, pop.singular_values
    out: dict[str, Any] = {
        "rank": r, "parameters": sum(p.numel() for p in model.parameters()), "log10_gap": pop.log10_gap,
        "log10_kept": _log10(s[r - 1] / s[0]) if r else -math.inf,
        "log10_dropped": _log10(s[r] / s[0]) if r < s.size else -math.inf,
        "singular_values": s}
    if draws <= 0:
        return out
    sizes = list(range(1, r + extra + 1))
    samples = [torch.randn(draws, n, d, generator=generator(seed, f"llr sample n={n}"), dtype=DTYPE) for n in sizes]
    jac = jacobian(model, torch.cat([x.reshape(-1, d) for x in samples]))  # every sample's rows at once
    ranks = np.zeros((len(sizes), draws), dtype=np.int64)
    kept = np.zeros((len(sizes), draws))
    row = 0
    for i, n in enumerate(sizes):
        for j in range(draws):
            res = numerical_rank(jac[row: row + n], rtol=rtol)
            row += n
            ranks[i, j] = res.rank
            sv = res.singular_values
            kept[i, j] = _log10(sv[res.rank - 1] / sv[0]) if res.rank else -math.inf
    out.update(sizes=np.array(sizes), sample_ranks=ranks, llr=(ranks == r).mean(1), sample_log10_kept=kept)
    return out


# ----------------------------------------------------------------------------- config
class LLRCheck(Spec):
    """Checks LLR-1 to LLR-4 (check N = LLR-N); ranks are compared exactly. Two thresholds are proposals of
    this module (the protocol gives none): "r << M" is read as r <= deep_fraction_max M, and a rank
    counts as clear when its gap is >= min_log10_gap decades (calibration: >= 5)."""

    deep_fraction_max: float = Field(default=0.5, gt=0, le=1)
    min_log10_gap: float = Field(default=3.0, ge=0)


class LLRConfig(MeasureSpec):
    experiment: str = NAME
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # target draws
    d: PosInt = 3
    width: PosInt = 8  # the wide two-layer net of the LLR curves
    other_widths: list[PosInt] = [4, 16]  # free in width: the same targets at these widths
    ks: list[PosInt] = [1, 2, 3]  # neurons of the two-layer targets
    deep_widths: list[PosInt] = [6, 6]
    narrow: list[list[PosInt]] = [[1, 1], [2, 1], [2, 2], [3, 2]]
    population: PosInt = 4000  # N Gaussian points of the population Jacobian
    draws: PosInt = 20  # random samples per sample size
    extra: int = Field(default=2, ge=1)  # sample sizes n = 1 .. r + extra
    rtol: float = Field(default=1e-8, gt=0, lt=1)
    check: LLRCheck = LLRCheck()

    @model_validator(mode="after")
    def _consistent(self) -> LLRConfig:
        if not self.ks:
            raise ValueError("ks: give at least one two-layer target size k")
        if max(self.ks) > min(self.width, *self.other_widths):
            raise ValueError(f"ks: a k-neuron target needs width >= k; max(ks) = {max(self.ks)} but the widths are "
                             f"{[self.width, *self.other_widths]}")
        for i, nw in enumerate(self.narrow):
            if len(nw) != len(self.deep_widths) or any(k > w for k, w in zip(nw, self.deep_widths)):
                raise ValueError(f"narrow[{i}]: must list one width <= the deep net's per hidden layer "
                                 f"(deep_widths = {self.deep_widths}), got {nw}")
        largest = max(self.parameters(self.deep_widths), self.parameters([max(self.width, *self.other_widths)]))
        if self.population < 10 * largest:
            raise ValueError(f"population: must be >= 10 x the largest parameter count ({largest}) so that "
                             f"N >> M, got {self.population}")
        return self

    def parameters(self, widths: list[int]) -> int:
        return narrow_parameter_count(self.d, widths)


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "full": {"seeds": [0, 1, 2], "population": 8000},
    # the smallest run of the whole pipeline (contract tests): small widths, one target size, few draws
    "smoke": {"width": 4, "other_widths": [2], "ks": [1], "narrow": [[1, 1]], "deep_widths": [2, 2],
              "population": 200, "draws": 2, "extra": 1},
}


def _params(cfg: LLRConfig, seed: int, widths: list[int], point: str, narrow: list[int] | None = None,
            llr: bool = False) -> RankParams:
    return params_from(cfg, RankParams, widths=widths, point=point, narrow=narrow or [], seed=seed,
                       draws=cfg.draws if llr else 0)


def measure(cfg: LLRConfig) -> list[Computation]:
    out = []
    for seed in cfg.seeds:
        for k in cfg.ks:
            out.append(Computation(f"seed={seed} two-layer k={k} m={cfg.width}", rank_and_llr,
                                   _params(cfg, seed, [cfg.width], "narrow", [k], llr=True)))
            out += [Computation(f"seed={seed} two-layer k={k} m={m}", rank_and_llr,
                                _params(cfg, seed, [m], "narrow", [k])) for m in cfg.other_widths]
        out.append(Computation(f"seed={seed} aligned m={cfg.width}", rank_and_llr,
                               _params(cfg, seed, [cfg.width], "aligned")))
        out += [Computation(f"seed={seed} deep narrow={nw}", rank_and_llr,
                            _params(cfg, seed, cfg.deep_widths, "narrow", nw, llr=True)) for nw in cfg.narrow]
        out.append(Computation(f"seed={seed} deep generic", rank_and_llr,
                               _params(cfg, seed, cfg.deep_widths, "generic")))
    return out


# ----------------------------------------------------------------------------- analysis
def _key(label: str) -> str:
    """The label without its seed: 'two-layer k=1 m=8', 'deep narrow=[1, 1]', ..."""
    return label.split(" ", 1)[1]


def _llr_step(res: dict[str, np.ndarray]) -> tuple[float, float]:
    """(max LLR probability over n < r, min over n >= r)."""
    sizes, llr, r = res["sizes"], res["llr"], int(res["rank"])
    below, above = llr[sizes < r], llr[sizes >= r]
    return (float(below.max()) if below.size else 0.0), (float(above.min()) if above.size else math.nan)


def analyze(cfg: LLRConfig, runs: list[RunData]) -> dict[str, Any]:
    failure = failed_runs(runs)
    if failure:
        return {"failure": failure}
    by_seed: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for r in runs:
        by_seed.setdefault(int(r.label.split(" ")[0].split("=")[1]), {})[_key(r.label)] = r.result
    widths = [cfg.width, *cfg.other_widths]
    M = cfg.parameters(cfg.deep_widths)
    per_seed: dict[int, dict[str, Any]] = {}
    for seed, res in sorted(by_seed.items()):
        two = {k: {m: int(res[f"two-layer k={k} m={m}"]["rank"]) for m in widths} for k in cfg.ks}
        deep = {str(nw): int(res[f"deep narrow={nw}"]["rank"]) for nw in cfg.narrow}
        llr_keys = [f"two-layer k={k} m={cfg.width}" for k in cfg.ks]
        deep_keys = [f"deep narrow={nw}" for nw in cfg.narrow]
        steps = {key: _llr_step(res[key]) for key in llr_keys + deep_keys}
        kept = [float(res[key]["sample_log10_kept"][res[key]["sizes"] >= res[key]["rank"]].min())
                for key in llr_keys + deep_keys]
        per_seed[seed] = {
            "two_layer_ranks": {str(k): {str(m): v for m, v in row.items()} for k, row in two.items()},
            "aligned_rank": int(res[f"aligned m={cfg.width}"]["rank"]),
            "deep_ranks": deep, "generic_rank": int(res["deep generic"]["rank"]),
            "generic_parameters": int(res["deep generic"]["parameters"]),
            "ranks": {key: int(v["rank"]) for key, v in res.items()},
            "log10_gaps": {key: float(v["log10_gap"]) for key, v in res.items()},
            "log10_kept": {key: float(v["log10_kept"]) for key, v in res.items()},
            "log10_dropped": {key: float(v["log10_dropped"]) for key, v in res.items()},
            "llr": {key: {str(n): float(p) for n, p in zip(res[key]["sizes"], res[key]["llr"])}
                    for key in llr_keys + deep_keys},
            "llr_below_two_layer": max(steps[key][0] for key in llr_keys),
            "llr_above_two_layer": min(steps[key][1] for key in llr_keys),
            "llr_below_deep": max(steps[key][0] for key in deep_keys),
            "llr_above_deep": min(steps[key][1] for key in deep_keys),
            "sample_log10_kept_min": min(kept),
        }
    seeds = list(per_seed.values())
    two_dev = max(abs(s["two_layer_ranks"][str(k)][str(cfg.width)] - k * (cfg.d + 1)) for s in seeds for k in cfg.ks)
    width_spread = max(max(row.values()) - min(row.values()) for s in seeds for row in s["two_layer_ranks"].values())
    excess = max(s["deep_ranks"][str(nw)] - cfg.parameters(nw) for s in seeds for nw in cfg.narrow)
    # the clearest evidence a rank is right: every population rank's gap, except full rank (no gap)
    gaps = [g for s in seeds for g in s["log10_gaps"].values() if math.isfinite(g)]
    return {
        "per_seed": {str(k): v for k, v in per_seed.items()},
        "two_layer_ranks": seeds[0]["two_layer_ranks"], "deep_ranks": seeds[0]["deep_ranks"],
        "two_layer_max_deviation": float(two_dev), "width_spread": float(width_spread),
        "llr_below": max(s["llr_below_two_layer"] for s in seeds),
        "llr_above": min(s["llr_above_two_layer"] for s in seeds),
        "llr_below_deep": max(s["llr_below_deep"] for s in seeds),
        "llr_above_deep": min(s["llr_above_deep"] for s in seeds),
        "deep_excess_max": float(excess),
        "deep_equal_narrow": float(all(s["deep_ranks"][str(nw)] == cfg.parameters(nw) for s in seeds
                                       for nw in cfg.narrow)),
        "deep_fraction_max": max(s["deep_ranks"][str(nw)] for s in seeds for nw in cfg.narrow) / M,
        "generic_rank_min": float(min(s["generic_rank"] for s in seeds)),
        "wide_parameters": M,
        "min_log10_gap": min(gaps) if gaps else math.inf,
        "sample_log10_kept_min": min(s["sample_log10_kept_min"] for s in seeds),
        "failure": "",
    }


def _worst(values: list[int], expected: int) -> float:
    """The value farthest from `expected` (the one a check should show)."""
    return float(max(values, key=lambda v: abs(v - expected)))


def verdict(cfg: LLRConfig, s: dict[str, Any]) -> Verdict:
    if s.get("failure"):
        return Verdict(NAME, (), source=SOURCE, failure=s["failure"])
    c, d, M = cfg.check, cfg.d, s["wide_parameters"]
    widths = [cfg.width, *cfg.other_widths]
    targets = ", ".join(f"({', '.join(map(str, nw))})" for nw in cfg.narrow)
    bounds = ", ".join(str(cfg.parameters(nw)) for nw in cfg.narrow)
    seeds = f"{len(cfg.seeds)} target draw(s)"
    checks = [Check(f"two-layer rank, k = {k} neuron(s), m = {cfg.width}", _worst(
        [p["two_layer_ranks"][str(k)][str(cfg.width)] for p in s["per_seed"].values()], k * (d + 1)), "==",
        k * (d + 1), paper=str(k * (d + 1)), note=f"k (d + 1); the draw farthest from it of {seeds}") for k in cfg.ks]
    checks += [
        Check(f"free in width: max - min of r over m in {widths}, every k", s["width_spread"], "==", 0,
              paper="0"),
        Check(f"aligned representation (all {cfg.width} neurons on w*), r", _worst(
            [p["aligned_rank"] for p in s["per_seed"].values()], d + 1), "==", d + 1, paper=str(d + 1),
            note=f"the draw farthest from d + 1 of {seeds}"),
        Check(f"LLR probability at n < r (max; two-layer, {cfg.draws} draws per n)", s["llr_below"], "==", 0.0,
              paper="0"),
        Check(f"LLR probability at n >= r (min; two-layer, n <= r + {cfg.extra})", s["llr_above"], "==", 1.0,
              paper="1 (20/20)"),
        Check(f"deep {cfg.deep_widths}: max r - M' over narrow targets {targets} (M' = {bounds})",
              s["deep_excess_max"], "<=", 0, paper="0 (r = M' = 5, 9, 12, 17)"),
        Check(f"deep: max r / M over the narrow targets (M = {M}; 'r << M')", s["deep_fraction_max"], "<=",
              c.deep_fraction_max, paper="17/60 = 0.28"),
        Check(f"deep: generic wide point, r (M = {M})", s["generic_rank_min"], "==", M, paper=str(M)),
        Check("LLR probability at n < r (max; deep narrow targets)", s["llr_below_deep"], "==", 0.0,
              note="the same theorem on the deep targets (not calibrated in the spec)"),
        Check("LLR probability at n >= r (min; deep narrow targets)", s["llr_above_deep"], "==", 1.0,
              note="the same theorem on the deep targets (not calibrated in the spec)"),
        Check("smallest log10 gap sigma_r / sigma_{r+1} of a population rank", s["min_log10_gap"], ">=",
              c.min_log10_gap, note=f"rtol = {cfg.rtol:g}; full-rank points have no gap"),
    ]
    return Verdict(NAME, tuple(checks), source=SOURCE, details={
        "rtol": cfg.rtol, "population": cfg.population,
        "deep ranks equal M' (calibration, docs/specs/recovery.md)": bool(s["deep_equal_narrow"]),
        "smallest log10 sigma_r / sigma_max of a sample Jacobian at n >= r (vs log10 rtol)":
            s["sample_log10_kept_min"],
        "per target draw": s["per_seed"]})


def figures(cfg: LLRConfig, runs: list[RunData], s: dict[str, Any]) -> dict[str, Any]:
    if s.get("failure"):
        return {}
    seed = s["per_seed"][str(cfg.seeds[0])]
    out = {}
    for title, keys in (("two-layer", [f"two-layer k={k} m={cfg.width}" for k in cfg.ks]),
                        ("deep", [f"deep narrow={nw}" for nw in cfg.narrow])):
        curves = {key: seed["llr"][key] for key in keys}
        n_max = max(int(n) for c in curves.values() for n in c)
        sizes = list(range(1, n_max + 1))
        series, marks = {}, {}
        for key, c in curves.items():
            label = key.replace("two-layer ", "").replace(f" m={cfg.width}", "").replace("deep narrow=", "(k1, k2) = ")
            series[label] = [c.get(str(n), np.nan) for n in sizes]
            marks[label] = float(seed["ranks"][key])
        out[f"LLR probability vs n ({title})"] = plots.curves(
            sizes, series, markers=True, marks=marks, xlabel="sample size n", ylabel="P[rank J_S = rank J]",
            title=f"local linear recovery, {title} tanh "
                  f"(width {cfg.width if title == 'two-layer' else cfg.deep_widths}); dotted: model rank r")
    bounds = [cfg.parameters(nw) for nw in cfg.narrow]
    out["deep ranks vs narrow target"] = plots.curves(
        bounds, {"narrow parameter count M' (the bound)": bounds,
                 "model rank r": [seed["deep_ranks"][str(nw)] for nw in cfg.narrow]},
        markers=True, hlines={"generic wide point: rank r = M": seed["generic_rank"]},
        xlabel="M' = k1 d + k2 k1 + k2 of the narrow targets " + ", ".join(map(str, cfg.narrow)),
        ylabel="rank", title=f"deep tanh {cfg.deep_widths}, d = {cfg.d}")
    return out


EXPERIMENT = register(Experiment(
    name=NAME,
    title="Local linear recovery: the model rank is the optimistic sample size",
    source=SOURCE,
    claim="At a target that a narrower tanh net expresses, the Jacobian rank is k (d + 1) for a k-neuron "
          "two-layer target at every width and at most the narrow net's parameter count for a deep one, far "
          "below the wide net's, and a generic sample recovers the target linearly exactly when n >= that rank.",
    config=LLRConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=no_training,
    measure=measure,
))
