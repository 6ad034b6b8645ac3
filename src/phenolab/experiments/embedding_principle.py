"""Embedding principle: a narrow network's critical point, embedded into a wider one, stays critical
with the same output and gains saddle directions; a wide net's training plateaus near it.

Zhang, Zhang, Luo, Xu, arXiv:2105.14573 (Fig. 1(a): plateaus of a width-500 tanh net); Zhang, Li,
Zhang, Luo, Xu, arXiv:2111.15527 (irreversibility of the Hessian inertia under embedding); Zhang,
Zhang, Luo, arXiv:2405.17501 (critical embedding and reduction, saddle branches). Setup and
checks EMB-1 to EMB-6: docs/specs/embedding-principle.md.

Data: d = 2, n = 30 inputs x ~ N(0, I) drawn by numpy's ``default_rng(data_seed)`` (seed 0
reproduces the pilot's narrow loss 3.1345e-2 to all printed digits), target
y = tanh(1.5 x1 + 0.3 x2) - tanh(-0.4 x1 + 1.2 x2) (two neurons), two-layer tanh nets without
biases (standard parametrization, so raw weights are the effective (w, a)), loss
L = (1/2n) sum_i e_i^2 (half phenolab's ``mse``).

(A) Static check (`static_check`). The width-1 net's best critical point over BFGS restarts
(gtol 1e-13), polished by Newton steps on the dense Hessian; its splitting embeddings T_delta
into width 2 and its null embedding (`phenolab.models.embedding`). At every point: loss, gradient
norm, outputs on fresh inputs, and the Hessian spectrum, exact (autograd, `hessian_matrix`) and
by the protocol's central differences of the gradient (step ``fd_step``; reported, not judged). The
predicted curvatures come from `phenolab.probes.embedding` (min_v lambda_split(delta, v) and the
null block's +-||g||).

(B) Dynamic check (`gd_trajectory`, one computation per width and seed). Full-batch GD (lr 0.1,
6000 steps) from init std 1e-6 on every weight, written out in numpy float64 with the analytic
gradient; every step records the loss and gradient norm, every ``record_every`` steps the number
of distinct directions among the big neurons (|a_k| ||w_k|| > ``big_fraction`` of the max,
greedily grouped from the biggest while |cos| > ``cos_merge``; |cos| because tanh is odd, so
(w, a) and (-w, -a) are one neuron). After the escape from the origin (loss < 0.9 L_0) the first
local minimum of ||grad L|| is the first plateau: its parameters are reduced to one neuron
(`merge_condensed`: sign-align the big neurons to the biggest, then a = sum a_k and w = the
a-weighted mean of the w_k, which keeps the output's linear part) and polished by BFGS as a
width-1 net; the analysis compares the result with the static width-1 critical point (up to the
sign symmetry). The second local minimum is reported, not judged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator

from phenolab.config import InitSpec, MLPSpec, PosFloat, PosInt, Spec
from phenolab.experiments.base import Computation, Experiment, MeasureSpec, RunData, no_training, params_from, register
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.models import build_model
from phenolab.models.embedding import merge_condensed, null_embedding, split_neuron
from phenolab.probes.embedding import count_directions, hessian_inertia, null_curvature, split_curvature
from phenolab.probes.hessian import central_difference_hessian
from phenolab.probes.parameters import flat_parameters, loss_and_gradient
from phenolab.report import plots
from phenolab.train.numpy_gd import tanh_two_layer_gd
from phenolab.train.polish import bfgs_newton, half_mse_hessian
from phenolab.train.seeding import generator

SOURCE = ("arXiv:2105.14573 (Fig. 1(a), loss plateaus of a wide tanh net), arXiv:2111.15527 (irreversibility), "
          "arXiv:2405.17501 (critical embedding, saddle branches)")

# the pilot (docs/specs/embedding-principle.md), printed beside the measured numbers
PAPER_NARROW = "loss 3.1345e-2, eigenvalues 0.0113, 0.873, 3.26"
PAPER_SADDLE = {0.5: (-0.1445, -0.144), 0.25: (-0.0867, -0.0878), -0.5: (-0.00214, -0.00224),
                1.5: (-0.00214, -0.00224)}  # delta: (predicted, measured)
PAPER_NULL_G = 0.0128
PAPER_PLATEAU = "0.036-0.037 vs 0.0313"


# ----------------------------------------------------------------------------------- config
class EmbeddingCheck(Spec):
    """Checks EMB-1 to EMB-6 (check N = EMB-N; the reach tolerances are phenolab's)."""

    grad_max: PosFloat = 1e-10  # checks 1, 2: ||grad L|| at the narrow and every embedded point
    loss_rtol: PosFloat = 1e-12  # check 2: |L_embedded - L_narrow| / L_narrow
    output_atol: PosFloat = 1e-6  # check 2: max |f_embedded - f_narrow| on fresh inputs
    saddle_rtol: PosFloat = 0.10  # check 3: |lambda_min - predicted| / |predicted|, every delta
    null_rtol: PosFloat = 0.05  # check 5: the null embedding's new eigenvalues vs +-||g||
    zero_tol: PosFloat = 1e-8  # inertia: |lambda| <= zero_tol * max |lambda| counts as zero
    directions_max: PosInt = 1  # check 6: directions of the big neurons at the first plateau
    plateau_excess_max: PosFloat = 0.25  # check 6: |L_plateau - L*| / L*
    reach_loss_rtol: PosFloat = 1e-9  # check 6: the polished width-1 net's |L - L*| / L*
    reach_param_atol: PosFloat = 1e-6  # check 6: its distance to theta* (up to the sign symmetry)


class EmbeddingConfig(MeasureSpec):
    experiment: str = "embedding-principle"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], min_length=1)  # dynamics (B)
    n: PosInt = 30
    data_seed: int = 0  # numpy default_rng(data_seed).normal(size=(n, 2)): 0 is the pilot's data
    # (A) static
    restarts: PosInt = 20
    restart_seed: int = 0
    gtol: PosFloat = 1e-13
    newton_steps: int = Field(3, ge=0)
    deltas: list[float] = Field(default_factory=lambda: [0.5, 0.25, -0.5, 1.5], min_length=1)
    n_fresh: PosInt = 200
    fd_step: PosFloat = 1e-6
    # (B) dynamics
    widths: list[PosInt] = Field(default_factory=lambda: [50], min_length=1)
    init_std: PosFloat = 1e-6
    lr: PosFloat = 0.1
    steps: PosInt = 6000
    record_every: PosInt = 10
    escape_fraction: float = Field(0.9, gt=0, lt=1)
    big_fraction: float = Field(0.01, gt=0, lt=1)
    cos_merge: float = Field(0.99, gt=0, lt=1)
    check: EmbeddingCheck = EmbeddingCheck()

    @field_validator("deltas")
    @classmethod
    def _saddle_deltas(cls, v: list[float]) -> list[float]:
        bad = [d for d in v if d in (0.0, 1.0) or not math.isfinite(d)]
        if bad:
            raise ValueError(f"every delta must be finite and not 0 or 1 (those give a null copy, no saddle "
                             f"branch), got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"deltas must be distinct, got {v}")
        return v


PRESETS = {
    "quick": {},
    "full": {"seeds": list(range(8)), "widths": [50, 500], "restarts": 50},
    # the smallest run of the whole pipeline (contract tests): few restarts, one short trajectory
    "smoke": {"seeds": [0], "n": 10, "restarts": 2, "deltas": [0.5], "n_fresh": 20, "widths": [5], "steps": 200},
}


# ----------------------------------------------------------------------------------- shared maths
def make_data(n: int, data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The protocol's data: x (n, 2) from numpy default_rng(data_seed), y (n, 1), float64."""
    x = torch.from_numpy(np.random.default_rng(data_seed).normal(size=(n, 2)))
    y = torch.tanh(1.5 * x[:, 0] + 0.3 * x[:, 1]) - torch.tanh(-0.4 * x[:, 0] + 1.2 * x[:, 1])
    return x, y[:, None]


def tanh_net(width: int, init_std: float | None = None, seed: int = 0):
    """A two-layer tanh net without biases (standard parametrization: raw = effective weights), float64."""
    init = InitSpec() if init_std is None else InitSpec(std=init_std)
    spec = MLPSpec(width=width, activation="tanh", bias=False, init=init)
    return build_model(spec, 2, 1, generator(seed, "model"), torch.float64)


hessian = half_mse_hessian  # the exact dense Hessian of (1/2n) sum e^2 (autograd)


def fd_hessian(model, x, y, h: float) -> np.ndarray:
    """The protocol's Hessian: central differences of the analytic gradient with step h, symmetrized."""
    return central_difference_hessian(lambda t: loss_and_gradient(model, x, y, t)[1], flat_parameters(model), h)


def sign_distance(theta: np.ndarray, ref: np.ndarray) -> float:
    """Distance of a width-1 net's (w1, w2, a) to ref, up to tanh's symmetry (w, a) -> (-w, -a)."""
    theta, ref = np.asarray(theta, dtype=float), np.asarray(ref, dtype=float)
    return float(min(np.linalg.norm(theta - ref), np.linalg.norm(theta + ref)))


# ----------------------------------------------------------------------------------- (A) static check
class StaticParams(Spec):
    """`static_check`: the data (n, data_seed), BFGS restarts, polishing, the split deltas, the
    fresh inputs of the output comparison and the finite-difference step."""

    n: PosInt
    data_seed: int
    restarts: PosInt
    restart_seed: int
    gtol: PosFloat
    newton_steps: int = Field(ge=0)
    deltas: list[float] = Field(min_length=1)
    n_fresh: PosInt
    fd_step: PosFloat


def static_check(params: StaticParams) -> dict[str, Any]:
    """The narrow critical point, its embeddings, gradients, outputs and Hessian spectra (module docstring)."""
    x, y = make_data(params.n, params.data_seed)
    narrow = tanh_net(1)
    starts = torch.randn(params.restarts, 3, generator=generator(params.restart_seed, "restarts"),
                         dtype=torch.float64).numpy()
    found = []
    for t0 in starts:
        loss = bfgs_newton(narrow, x, y, t0, gtol=params.gtol, newton_steps=0)
        found.append((loss, flat_parameters(narrow)))
    restart_losses = np.array([f[0] for f in found])
    best = found[int(np.argmin(restart_losses))][1]
    bfgs_newton(narrow, x, y, best, gtol=params.gtol, newton_steps=params.newton_steps)
    narrow_loss, narrow_grad = loss_and_gradient(narrow, x, y)
    fresh = torch.randn(params.n_fresh, 2, generator=generator(params.restart_seed, "fresh"), dtype=torch.float64)
    with torch.no_grad():
        f_narrow = narrow(fresh)
    h = params.fd_step
    out: dict[str, Any] = {
        "x": x.numpy(), "y": y.numpy()[:, 0], "restart_losses": restart_losses,
        "narrow_theta": flat_parameters(narrow), "narrow_loss": narrow_loss,
        "narrow_grad_norm": float(np.linalg.norm(narrow_grad)),
        "narrow_eigenvalues": np.linalg.eigvalsh(hessian(narrow, x, y)),
        "narrow_fd_eigenvalues": np.linalg.eigvalsh(fd_hessian(narrow, x, y, h)),
    }

    def measure_point(wide) -> tuple[float, float, float, np.ndarray, np.ndarray]:
        loss, grad = loss_and_gradient(wide, x, y)
        with torch.no_grad():
            diff = float((wide(fresh) - f_narrow).abs().max())
        return (loss, float(np.linalg.norm(grad)), diff, np.linalg.eigvalsh(hessian(wide, x, y)),
                np.linalg.eigvalsh(fd_hessian(wide, x, y, h)))

    deltas = np.asarray(params.deltas, dtype=float)
    split = [measure_point(split_neuron(narrow, 0, float(d))) for d in deltas]
    for k, key in enumerate(("split_loss", "split_grad_norm", "split_output_diff", "split_eigenvalues",
                             "split_fd_eigenvalues")):
        out[key] = np.array([s[k] for s in split])
    out["deltas"] = deltas
    out["split_predicted"] = np.array([split_curvature(narrow, x, y, 0, float(d))["lambda_min"] for d in deltas])
    out["he_eigenvalues"] = split_curvature(narrow, x, y, 0, 0.5)["eigenvalues"]  # a_j H_e
    for key, value in zip(("null_loss", "null_grad_norm", "null_output_diff", "null_eigenvalues",
                           "null_fd_eigenvalues"), measure_point(null_embedding(narrow))):
        out[key] = value
    null = null_curvature(narrow, x, y)
    out["null_g_norm"], out["null_predicted_eigenvalues"] = null["g_norm"], null["eigenvalues"]
    return out


# ----------------------------------------------------------------------------------- (B) dynamics
class TrajectoryParams(Spec):
    """`gd_trajectory`: one width and init seed, the data, GD (init std, lr, steps), the recording
    and condensation thresholds, and the polishing of the reduced plateau."""

    width: PosInt
    seed: int
    n: PosInt
    data_seed: int
    init_std: PosFloat
    lr: PosFloat
    steps: PosInt
    record_every: PosInt
    escape_fraction: float = Field(gt=0, lt=1)
    big_fraction: float = Field(gt=0, lt=1)
    cos_merge: float = Field(gt=0, lt=1)
    gtol: PosFloat
    newton_steps: int = Field(ge=0)


def gd_trajectory(params: TrajectoryParams) -> dict[str, Any]:
    """GD of a width-m tanh net from a tiny init (module docstring, (B);
    `phenolab.train.numpy_gd.tanh_two_layer_gd`): per-step loss and gradient norm, recorded
    direction counts, the first two local minima of ||grad L|| after the escape, and the first
    one reduced to width 1 and polished by BFGS. The parameters at the minima are those of a
    second, identical GD run to the later one (GD is deterministic)."""
    x_t, y_t = make_data(params.n, params.data_seed)
    x, y = x_t.numpy(), y_t.numpy()[:, 0]
    w_t, _, a_t = tanh_net(params.width, params.init_std, params.seed).neurons()
    w0, a0 = w_t.detach().numpy().copy(), a_t.detach().numpy()[:, 0].copy()
    steps, lr, every = params.steps, params.lr, params.record_every
    big, cos = params.big_fraction, params.cos_merge
    fit = tanh_two_layer_gd(w0, a0, x, y, lr=lr, steps=steps, snapshot_steps=range(0, steps + 1, every))
    loss, gnorm = fit.loss, fit.grad_norm
    rec_steps = sorted(fit.snapshots)
    dirs = [count_directions(*fit.snapshots[t], big, cos) for t in rec_steps]
    escape, at = fit.plateaus(params.escape_fraction)
    again = tanh_two_layer_gd(w0, a0, x, y, lr=lr, steps=max(at), snapshot_steps=at).snapshots if at else {}
    minima = [(t, *again[t]) for t in at]
    out: dict[str, Any] = {"loss": loss, "grad_norm": gnorm, "record_steps": np.array(rec_steps),
                           "directions": np.array(dirs), "escape_step": escape, "final_loss": loss[-1],
                           "final_directions": count_directions(fit.w, fit.a, big, cos)}
    for name, k in (("plateau", 0), ("second", 1)):
        if k < len(minima):
            step, wk, ak = minima[k]
            out.update({f"{name}_step": step, f"{name}_loss": loss[step], f"{name}_grad_norm": gnorm[step],
                        f"{name}_directions": count_directions(wk, ak, big, cos)})
        else:
            out.update({f"{name}_step": -1, f"{name}_loss": math.nan, f"{name}_grad_norm": math.nan,
                        f"{name}_directions": -1})
    if minima:
        _, wk, ak = minima[0]
        size = np.abs(ak) * np.linalg.norm(wk, axis=1)
        merged = merge_condensed(wk, ak, big)
        narrow = tanh_net(1)
        polished_loss = bfgs_newton(narrow, x_t, y_t, merged, gtol=params.gtol, newton_steps=params.newton_steps)
        out.update({"plateau_w": wk, "plateau_a": ak, "plateau_big": int((size > big * size.max()).sum()),
                    "merged_theta": merged, "merged_loss": loss_and_gradient(narrow, x_t, y_t, merged)[0],
                    "polished_theta": flat_parameters(narrow), "polished_loss": polished_loss,
                    "polished_grad_norm": float(np.linalg.norm(loss_and_gradient(narrow, x_t, y_t)[1]))})
    return out


# ----------------------------------------------------------------------------------- the experiment
def measure(cfg: EmbeddingConfig) -> list[Computation]:
    out = [Computation("static", static_check, params_from(cfg, StaticParams))]
    out += [Computation(f"dynamics width={m} seed={s}", gd_trajectory,
                        params_from(cfg, TrajectoryParams, width=m, seed=s))
            for m in cfg.widths for s in cfg.seeds]
    return out


def _new_eigenvalues(wide: np.ndarray, narrow: np.ndarray) -> np.ndarray:
    """The wide spectrum less, for each narrow eigenvalue, the nearest wide one (sorted)."""
    rest = list(np.sort(wide))
    for lam in narrow:
        rest.pop(int(np.argmin([abs(r - lam) for r in rest])))
    return np.array(rest)


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a).reshape(-1)]


def analyze(cfg: EmbeddingConfig, runs: list[RunData]) -> dict[str, Any]:
    failure = failed_runs(runs)
    if failure:
        return {"failure": failure}
    c = cfg.check
    st = next(r for r in runs if r.label == "static").result
    L = float(st["narrow_loss"])
    narrow_eig = st["narrow_eigenvalues"]

    def inertia(ev: np.ndarray) -> tuple[int, int, int]:
        return hessian_inertia(ev, tol=c.zero_tol)

    narrow_inertia = inertia(narrow_eig)
    deltas = _floats(st["deltas"])
    split_min = [float(ev[0]) for ev in st["split_eigenvalues"]]
    predicted = _floats(st["split_predicted"])
    embedded = {f"split delta={d:g}": (float(st["split_loss"][k]), float(st["split_grad_norm"][k]),
                                       float(st["split_output_diff"][k]), st["split_eigenvalues"][k],
                                       st["split_fd_eigenvalues"][k])
                for k, d in enumerate(deltas)}
    embedded["null"] = (float(st["null_loss"]), float(st["null_grad_norm"]), float(st["null_output_diff"]),
                        st["null_eigenvalues"], st["null_fd_eigenvalues"])
    inertias = {k: inertia(v[3]) for k, v in embedded.items()}
    g = float(st["null_g_norm"])
    new = _new_eigenvalues(st["null_eigenvalues"], narrow_eig)
    new_inertia = inertia(np.concatenate([new, narrow_eig]))  # zero tolerance relative to the whole spectrum
    fd_err = max(float(np.abs(np.asarray(v[4]) - np.asarray(v[3])).max()) for v in embedded.values())
    fd_err = max(fd_err, float(np.abs(st["narrow_fd_eigenvalues"] - narrow_eig).max()))
    out: dict[str, Any] = {
        "failure": "",
        "narrow_loss": L, "narrow_grad_norm": float(st["narrow_grad_norm"]),
        "narrow_theta": _floats(st["narrow_theta"]),
        "narrow_eigenvalues": _floats(narrow_eig), "narrow_inertia": list(narrow_inertia),
        "restarts_at_best": int((np.abs(st["restart_losses"] - L) <= 1e-9 * L).sum()),
        "restart_losses": sorted({round(float(v), 8) for v in st["restart_losses"]}),
        "embedded_loss_rdiff_max": max(abs(v[0] - L) / L for v in embedded.values()),
        "embedded_grad_norm_max": max(v[1] for v in embedded.values()),
        "embedded_output_diff_max": max(v[2] for v in embedded.values()),
        "embedded_eigenvalues": {k: _floats(v[3]) for k, v in embedded.items()},
        "embedded_inertia": {k: list(v) for k, v in inertias.items()},
        "inertia_increase_min": min(w - n for v in inertias.values() for w, n in zip(v, narrow_inertia)),
        "fd_eigenvalue_error_max": fd_err,
        "he_eigenvalues": _floats(st["he_eigenvalues"]),
        "saddle": {f"{d:g}": {"predicted": p, "measured": m, "rel_err": abs(m - p) / abs(p) if p else math.inf}
                   for d, p, m in zip(deltas, predicted, split_min)},
        "saddle_min_eigenvalue_max": max(split_min),
        "null_g_norm": g, "null_new_eigenvalues": _floats(new),
        "null_rel_err": max(abs(new[-1] - g), abs(new[0] + g)) / g if g > 0 else math.inf,
        "null_new_zeros": int(new_inertia[1] - narrow_inertia[1]),
    }
    dyn: list[dict[str, Any]] = []
    for r in runs:
        if not r.label.startswith("dynamics"):
            continue
        res = r.result
        row = {"label": r.label.removeprefix("dynamics "), "escape_step": int(res["escape_step"]),
               "plateau_step": int(res["plateau_step"]), "plateau_loss": float(res["plateau_loss"]),
               "plateau_excess": float(res["plateau_loss"]) / L - 1.0,
               "plateau_directions": int(res["plateau_directions"]),
               "second_step": int(res["second_step"]), "second_loss": float(res["second_loss"]),
               "second_directions": int(res["second_directions"]),
               "final_loss": float(res["final_loss"]), "final_directions": int(res["final_directions"])}
        if "polished_theta" in res:
            row.update({"plateau_big": int(res["plateau_big"]), "merged_loss": float(res["merged_loss"]),
                        "polished_loss": float(res["polished_loss"]),
                        "polished_loss_rdiff": abs(float(res["polished_loss"]) - L) / L,
                        "polished_distance": sign_distance(res["polished_theta"], st["narrow_theta"])})
        else:
            row.update({"polished_loss": math.nan, "polished_loss_rdiff": math.inf, "polished_distance": math.inf})
        dyn.append(row)
    reached = [r["polished_loss_rdiff"] <= c.reach_loss_rtol and r["polished_distance"] <= c.reach_param_atol
               for r in dyn]
    out.update({
        "dynamics": dyn,
        "plateau_directions_max": max((r["plateau_directions"] if r["plateau_step"] >= 0 else math.inf)
                                      for r in dyn),
        "plateau_excess_max": max(abs(r["plateau_excess"]) if r["plateau_step"] >= 0 else math.inf for r in dyn),
        "plateau_loss_range": [min(r["plateau_loss"] for r in dyn), max(r["plateau_loss"] for r in dyn)],
        "reached_fraction": float(np.mean(reached)), "reached": f"{sum(reached)}/{len(reached)}",
        "polished_loss_rdiff_max": max(r["polished_loss_rdiff"] for r in dyn),
        "polished_distance_max": max(r["polished_distance"] for r in dyn),
    })
    return out


def verdict(cfg: EmbeddingConfig, s: dict[str, Any]) -> Verdict:
    if s.get("failure"):
        return Verdict("embedding-principle", (), source=SOURCE, failure=s["failure"])
    c = cfg.check
    n_runs = len(s["dynamics"])
    checks = [
        Check("1. narrow critical point: ||grad L||", s["narrow_grad_norm"], "<", c.grad_max, paper="(not given)"),
        Check("1. narrow critical point: min Hessian eigenvalue", min(s["narrow_eigenvalues"]), ">", 0.0,
              paper=PAPER_NARROW),
        Check("2. embedded points: max |L - L_narrow| / L_narrow", s["embedded_loss_rdiff_max"], "<=", c.loss_rtol,
              paper="<= 2e-15"),
        Check(f"2. embedded points: max |f - f_narrow| on {cfg.n_fresh} fresh inputs", s["embedded_output_diff_max"],
              "<=", c.output_atol, paper="(same output function)"),
        Check("2. embedded points: max ||grad L||", s["embedded_grad_norm_max"], "<", c.grad_max, paper="<= 2e-15"),
        Check("3. split points: largest min Hessian eigenvalue (all strict saddles)", s["saddle_min_eigenvalue_max"],
              "<", 0.0, paper="a_j eig(H_e) = (+0.0071, -0.289): saddles for all four delta"),
    ]
    for d, v in s["saddle"].items():
        pp = PAPER_SADDLE.get(float(d))
        paper = f"predicted {pp[0]:g}, measured {pp[1]:g}" if pp else ""
        checks.append(Check(f"3. delta = {d}: |lambda_min - predicted| / |predicted| "
                            f"(predicted {v['predicted']:.4g}, measured {v['measured']:.4g})",
                            v["rel_err"], "<=", c.saddle_rtol, paper=paper))
    checks += [
        Check("4. irreversibility: min over embeddings of #(neg, zero, pos) embedded - narrow",
              s["inertia_increase_min"], ">=", 0.0, paper="width 1: (0, 0, 3); split: (1, 1, 4)"),
        Check(f"5. null embedding: new eigenvalues vs +-||g|| = +-{s['null_g_norm']:.4g} (max rel. error)",
              s["null_rel_err"], "<=", c.null_rtol, paper=f"+-{PAPER_NULL_G}"),
        Check("5. null embedding: new zero eigenvalues", s["null_new_zeros"], "==", 1.0, paper="one zero"),
        Check(f"6. first plateau: directions of big neurons (max over {n_runs} runs)", s["plateau_directions_max"],
              "<=", c.directions_max, paper="1 direction, 4/4 seeds"),
        Check(f"6. first plateau: |L_plateau - L*| / L* (max over {n_runs} runs; L* = width-1 critical loss)",
              s["plateau_excess_max"], "<=", c.plateau_excess_max, paper=PAPER_PLATEAU),
        Check(f"6. reduced plateau + BFGS reaches the width-1 critical point (fraction of {n_runs} runs: "
              f"|L - L*| / L* <= {c.reach_loss_rtol:g}, |theta - theta*| <= {c.reach_param_atol:g})",
              s["reached_fraction"], ">=", 1.0, paper="3/3 seeds reached 0.0313"),
    ]
    sec = [r for r in s["dynamics"] if r["second_step"] >= 0]
    details = {
        "narrow critical point (width 1)": {
            "loss": s["narrow_loss"], "theta (w1, w2, a)": s["narrow_theta"],
            "Hessian eigenvalues": s["narrow_eigenvalues"], "inertia (neg, zero, pos)": s["narrow_inertia"],
            f"restarts reaching it (of {cfg.restarts})": s["restarts_at_best"],
            "distinct restart losses": s["restart_losses"], "paper": PAPER_NARROW},
        "Hessian spectrum at the embedded points (saddle branches)": s["embedded_eigenvalues"],
        "inertia (neg, zero, pos) at the embedded points": s["embedded_inertia"],
        "a_j eig(H_e) (paper: +0.0071, -0.289)": s["he_eigenvalues"],
        "saddle branch per delta (predicted min lambda_split vs measured min eigenvalue)": s["saddle"],
        "null embedding new eigenvalues": s["null_new_eigenvalues"],
        f"finite-difference Hessian (h = {cfg.fd_step:g}) vs exact: max eigenvalue error": s["fd_eigenvalue_error_max"],
        "dynamics per run": s["dynamics"],
        "second plateau (not judged; paper: loss 0.008-0.010, 3-5 directions)": {
            "loss range": [min((r["second_loss"] for r in sec), default=math.nan),
                           max((r["second_loss"] for r in sec), default=math.nan)],
            "directions": [r["second_directions"] for r in sec]},
    }
    return Verdict("embedding-principle", tuple(checks), source=SOURCE, details=details)


def figures(cfg: EmbeddingConfig, runs: list[RunData], s: dict[str, Any]) -> dict[str, Any]:
    if s.get("failure"):
        return {}
    per_width = max(1, 6 // len(cfg.widths))  # at most about six curves, every width shown
    dyn = [r for m in cfg.widths for r in [r for r in runs if r.label.startswith(f"dynamics width={m} ")][:per_width]]
    if not dyn:
        return {}
    results = {r.label.removeprefix("dynamics "): r.result for r in dyn}
    steps = np.arange(cfg.steps + 1)
    marks = {k: float(v["plateau_step"]) if v["plateau_step"] >= 0 else None for k, v in results.items()}
    L = s["narrow_loss"]
    out = {
        "training loss": plots.curves(
            steps, {k: v["loss"] for k, v in results.items()}, logy=True, logx=True, marks=marks,
            hlines={"width-1 critical loss": L}, ylabel="loss (1/2n) sum e^2",
            title=f"GD from init std {cfg.init_std:g} (dotted: first ||grad L|| minimum)"),
        "gradient norm": plots.curves(
            steps, {k: v["grad_norm"] for k, v in results.items()}, logy=True, logx=True, marks=marks,
            ylabel="||grad L||", title="gradient norm (dotted: first local minimum after the escape)"),
    }
    first = next(iter(results.values()))
    out["directions of the big neurons"] = plots.curves(
        first["record_steps"], {k: v["directions"] for k, v in results.items()}, logx=True, marks=marks,
        ylabel="directions", title=f"distinct directions (|a| ||w|| > {cfg.big_fraction:g} max, "
                                   f"|cos| > {cfg.cos_merge:g})")
    spectra = {"width 1": s["narrow_eigenvalues"], **s["embedded_eigenvalues"]}
    predicted = {f"split delta={d}": [v["predicted"]] for d, v in s["saddle"].items()}
    predicted["null"] = [-s["null_g_norm"], s["null_g_norm"]]
    out["Hessian eigenvalues: narrow vs embedded"] = plots.spectrum_strips(
        spectra, predicted=predicted, title="Hessian spectrum (x: predicted saddle curvature)")
    return out


EXPERIMENT = register(Experiment(
    name="embedding-principle",
    title="Embedding principle: critical embeddings, saddle branches and training plateaus",
    source=SOURCE,
    claim="A width-1 tanh net's critical point, split or null-embedded into width 2, stays critical with the "
          "same output and gains the predicted negative Hessian eigenvalues (a saddle branch), its inertia "
          "never decreasing; GD of a width-50 net from tiny init plateaus at that width-1 critical point, "
          "condensed to one direction.",
    config=EmbeddingConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=no_training,
    measure=measure,
))
