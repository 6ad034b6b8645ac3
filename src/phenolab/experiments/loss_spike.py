"""Loss spikes: full-batch GD at the edge of stability, a top Hessian eigenvalue above 2/eta before
every spike, a low-frequency deviation along the top eigendirection, and condensation.

Li, Xu, Zhang (2023), "Loss Spike in Training Neural Networks", arXiv:2305.12133. Claim: a spike
happens when training enters a region where lower loss comes with a larger lambda_max
(smaller-loss-as-sharper, SLAS); once lambda_max exceeds the stability limit 2/eta the loss grows
exponentially along the top eigendirection until training escapes to a flatter region. The
deviation along the first eigendirection is dominated by low frequencies, which the network
re-learns fast (F-Principle), so the descent is rapid. Spikes facilitate condensation.

Setting (docs/specs/loss-spike.md, a CPU protocol; the paper's exact
settings were not found): 20 evenly spaced points on [-1, 1], y = sin(pi x) + 0.5 sin(3 pi x);
two-layer tanh net of width 100 with input weights and biases (no output bias), NTK-style:
f(x) = (1/sqrt(m)) sum_k a_k tanh(w_k x + b_k), raw a, w, b ~ N(0, 1) (phenolab's ``ntk``);
full-batch GD on phenolab's MSE mean (f - y)^2 with eta = c 2 / lambda_max(theta_0),
c in {0.8, 0.5, 0.25}: the first c (in that order) whose run has at least one spike is studied.
lambda_max is the top eigenvalue of the Hessian of the same loss the GD step descends, so 2/eta
is its stability threshold whatever the loss's constant factor. lambda_max(theta_0) is measured
when the runs are planned, on the run's own deterministic initial model (`initial_sharpness`).

Measurements (all from stored data of the run; probes ``hessian`` (k=1, ``vectors``) and
``parameters`` at every ``train.probe_every`` steps, the loss at every step):

* spikes (`detect_spikes`): onset t_o where the loss starts a run of increases that ends at the
  peak t_p with L(t_p) >= 10 L(t_o); end t_e = the first step after t_p with L < L(t_o);
* lambda_max at t_o, t_p, t_e over 2/eta (each at the probe step nearest to it);
* SLAS: the Spearman rank correlation of L(t) and lambda_max(t) over the probe steps of the
  500 steps before t_o; where an earlier spike ended inside that window, the window starts at its
  end t_e (``slas_after_previous_spike``; the earlier spike's descent, where loss and lambda_max
  fall together, is not this spike's approach; the full-window value is reported beside it);
* the deviation Delta theta = theta(t_p) - theta(t_o) and v_1 the top Hessian eigenvector at
  t_o: the first-order function change along v_1, delta f_1(x) = J(x; theta(t_o)) v_1 (Delta
  theta . v_1), and the rest of the function change, f(x; theta(t_p)) - f(x; theta(t_o)) -
  delta f_1(x), on 512 evenly spaced points of the data interval; rho_LF of each is the share
  of its DFT energy in the lowest 5 % of frequencies (`low_frequency_share`);
* condensation (`top_neuron_alignment`): the mean pairwise |cos| between the input vectors
  (w_k, b_k) of the top 50 % of neurons by amplitude |a_k| ||(w_k, b_k)||, at t_o and at
  t_e + 500, in the run and in a control run with eta / 4 (same steps, no spike expected).

Verdict: SPIKE-1 to SPIKE-4 (docs/specs/loss-spike.md; unpiloted guesses), judged on every detected
spike of the chosen run (the worst spike is shown).

Measured (seed 0; quick: 1 spike, full: 3 spikes at c = 0.8, none at 0.5 or 0.25): lambda_max(t_o)
is 1.01-1.02 x 2/eta and lambda_max(t_e) 0.98-0.99 x 2/eta, rho_SLAS = -1, rho_LF(top) = 0.9997 >
rho_LF(non-top) = 0.955-0.996; but the condensation gain is ~1e-4 (SPIKE-4 wants +0.05): at width
100 this NTK-style net is nearly lazy and a spike rotates no neuron by more than ~2.5 degrees, so
that check fails. (Not judged: with the mean of the change removed, rho_LF(top) is 0.96-0.97 and
not always above the non-top share; at width 20 the first spike raises the mean |cos| by ~0.03-0.07.
Seeds 1-4 at c = 0.8 do not spike within 20k steps: lambda_max reaches 0.997 x 2/eta for seed 1,
0.90 x 2/eta for seed 2.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Union, cast

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from phenolab.config import (
    ExperimentSpec,
    ExpressionData,
    MLPSpec,
    PosFloat,
    PosInt,
    ProbeSpec,
    RunSpec,
    Seeds,
    SinesData,
    Spec,
    TrainSpec,
)
from phenolab.experiments.analysis import (
    Spike,
    detect_spikes,
    finite_or_none,
    nearest_index,
    round_sig,
    window_spearman,
)
from phenolab.experiments.base import Experiment, Planned, RunData, register, with_conditions
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.probes.condensation import neuron_vectors, top_neuron_alignment
from phenolab.probes.frequency import low_frequency_share
from phenolab.probes.hessian import hessian_probe
from phenolab.probes.neurons import two_layer_neurons
from phenolab.probes.parameters import directional_derivative, function_values, unflatten_parameters
from phenolab.report import plots
from phenolab.train.engines import build_run as build

SOURCE = "arXiv:2305.12133 (Li, Xu, Zhang 2023, 'Loss Spike in Training Neural Networks')"

Fraction = Annotated[float, Field(gt=0, le=1)]


# ------------------------------------------------------------------------------------ config
class LossSpikeCheck(Spec):
    """SPIKE-1 to SPIKE-4 thresholds (docs/specs/loss-spike.md, all unpiloted guesses)."""

    onset_ratio: float = 0.95  # lambda_max(t_o) >= onset_ratio * 2/eta
    end_ratio: float = 1.0  # lambda_max(t_e) < end_ratio * 2/eta
    max_slas: float = -0.5  # Spearman(L, lambda_max) over the window before t_o <= this
    min_low_share: float = 0.7  # rho_LF(delta f_1) >= this (and > rho_LF of the non-top change)
    min_condensation_gain: float = 0.05  # mean |cos| after - before >= this (and > the control's)


OneD = Annotated[Union[SinesData, ExpressionData], Field(discriminator="kind")]


class LossSpikeConfig(ExperimentSpec):
    """The CPU protocol of docs/specs/loss-spike.md. ``train.lr`` is not used: the plan sets each run's
    learning rate to c 2 / lambda_max(theta_0) (control runs: that over ``control_divisor``)."""

    experiment: str = "loss-spike"
    seeds: Seeds = [0]
    cs: Annotated[list[PosFloat], Field(min_length=1)] = [0.8, 0.5, 0.25]  # eta = c 2 / lambda_max(theta_0)
    control_divisor: Annotated[float, Field(gt=1)] = 4.0  # the control run's eta / this
    spike_factor: Annotated[float, Field(gt=1)] = 10.0  # L(t_p) >= factor L(t_o)
    slas_window: PosInt = 500  # steps before t_o for the SLAS correlation
    slas_after_previous_spike: bool = True  # start the SLAS window no earlier than the previous spike's end
    after_steps: PosInt = 500  # condensation "after the spike" = t_e + this
    grid_points: Annotated[int, Field(ge=16)] = 512  # the deviation's evaluation grid on the data interval
    low_fraction: Fraction = 0.05  # rho_LF: share of the lowest frequencies
    top_fraction: Fraction = 0.5  # condensation: neurons of largest amplitude
    model: MLPSpec = MLPSpec(width=100, activation="tanh", bias=True, output_bias=False, parametrization="ntk")
    data: OneD = SinesData(frequencies=[math.pi, 3 * math.pi], amplitudes=[1.0, 0.5], interval=(-1.0, 1.0),
                           n_train=20)
    train: TrainSpec = TrainSpec(optimizer="gd", lr=1.0, steps=20000, probe_every=10, dtype="float64")
    probes: list[ProbeSpec] = [ProbeSpec(name="hessian", options={"k": 1, "vectors": True}),
                               ProbeSpec(name="parameters")]
    check: LossSpikeCheck = LossSpikeCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> LossSpikeConfig:
        self.require_probes("hessian", "parameters")
        tr = self.train
        if tr.optimizer != "gd" or tr.momentum != 0 or tr.batch_size is not None:
            raise ValueError(f"train: the stability limit 2/eta is plain full-batch GD's; need optimizer=gd, "
                             f"momentum=0, no batch_size, got {tr.optimizer!r}, {tr.momentum}, {tr.batch_size}")
        if tr.restart_on_jump is not None or tr.stop_ratio is not None:
            raise ValueError("train: restart_on_jump and stop_ratio would cut the spikes short or end the runs "
                             f"early; both must be unset, got {tr.restart_on_jump}, {tr.stop_ratio}")
        if len(self.model.hidden_widths) != 1:
            raise ValueError(f"model: condensation reads the neurons of a two-layer net (depth 1), got hidden "
                             f"widths {self.model.hidden_widths}")
        hessian = next(p for p in self.probes if p.name == "hessian")
        if hessian.options.get("vectors") is not True:
            raise ValueError("probes: the hessian probe needs vectors=true (the top eigendirection at t_o)")
        if hessian.options.get("points") is not None:
            raise ValueError(f"probes: the hessian probe must use the full batch (points unset), the Hessian of the "
                             f"loss GD descends; got points={hessian.options['points']}")
        params = next(p for p in self.probes if p.name == "parameters")
        if (hessian.every or tr.probe_every) != (params.every or tr.probe_every):
            raise ValueError(f"probes: hessian (every {hessian.every or tr.probe_every}) and parameters (every "
                             f"{params.every or tr.probe_every}) must run at the same steps")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # c = 0.8 only (the protocol's first c, which spikes for seed 0) and 10k steps: seed 0's first spike
    # starts at step ~8.8k and ends ~9.1k, so t_e + 500 fits. Two runs (c = 0.8 and its eta/4 control);
    # the Hessian probe (~8 HVPs every 10 steps) is half the time. Measured on one torch thread of a
    # busy 2-core machine: 21-27 s CPU, 42-54 s wall
    "quick": {"cs": [0.8], "train": {"steps": 10000}},
    # the protocol's sizes: 20k steps, c in {0.8, 0.5, 0.25} (the first that spikes is studied), six runs;
    # 89 s CPU on one thread
    "full": {},
    # the smallest run of the whole pipeline (contract tests): one c, width 10, 100 steps
    "smoke": {"cs": [0.8], "model": {"width": 10}, "train": {"steps": 100}, "slas_window": 20, "after_steps": 20,
              "grid_points": 16},
}


def label(seed: int, c: float, control: bool = False) -> str:
    return f"seed={seed},c={c:g}" + (",control" if control else "")


@dataclass(frozen=True)
class Rate:
    """A run's condition: seed, c (eta = c 2 / lambda_max(theta_0)) and whether it is the eta /
    control_divisor control."""

    seed: int
    c: float
    control: bool = False

    @property
    def label(self) -> str:
        return label(self.seed, self.c, self.control)


def conditions(cfg: LossSpikeConfig) -> list[Rate]:
    """The runs' conditions in plan order (cheap: no initial sharpness, unlike `plan`)."""
    return [Rate(seed, c, control) for seed in cfg.seeds for c in cfg.cs for control in (False, True)]


_LANCZOS_OPTIONS = ("loss", "float64", "seed", "tol", "iters")


def initial_sharpness(spec: RunSpec, hessian_options: dict[str, Any] | None = None) -> float:
    """lambda_max(theta_0): the top eigenvalue of the training-loss Hessian of the run's initial
    model (built as the trainer builds it, `phenolab.train.engines.build_run`), by the
    ``hessian`` probe with the run's Lanczos options."""
    task, model = build(spec)
    options = {k: v for k, v in (hessian_options or {}).items() if k in _LANCZOS_OPTIONS}
    return float(hessian_probe(model, task, k=1, **options)["top_0"])


def plan(cfg: LossSpikeConfig) -> list[Planned]:
    """Per seed: lambda_max(theta_0), then per c a run with eta = c 2 / lambda_max(theta_0) and its
    control with eta / control_divisor (probe ``parameters`` only)."""
    hessian = next(p for p in cfg.probes if p.name == "hessian")
    params = [p.model_dump(mode="json") for p in cfg.probes if p.name == "parameters"]
    lam0 = {seed: initial_sharpness(cfg.run_spec(seed), hessian.options) for seed in cfg.seeds}
    out = []
    for r in conditions(cfg):
        lr = r.c * 2.0 / lam0[r.seed]
        changes = {"train.lr": lr / cfg.control_divisor, "probes": params} if r.control else {"train.lr": lr}
        out.append(Planned(r.label, cfg.run_spec(r.seed, **changes), r))
    return out


def _by_rate(cfg: LossSpikeConfig, runs: list[RunData]) -> dict[Rate, RunData]:
    return {r.condition: r for r in with_conditions(runs, {c.label: c for c in conditions(cfg)})}


# ---------------------------------------------------------------------------------- analysis
class _Trajectory:
    """The stored parameter points of a run (probe ``parameters``) and its network, to evaluate
    f(x; theta) and the neurons at any stored step."""

    def __init__(self, run: RunData) -> None:
        art = run.artifact("parameters/theta")
        self.steps, self.theta = art["steps"], art["values"]
        self.model = build(cast(RunSpec, run.spec))[1]

    def at(self, step: float) -> tuple[int, np.ndarray]:
        i = nearest_index(self.steps, step)
        return int(self.steps[i]), self.theta[i]

    def neurons(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input vectors u_k = (w_k, b_k) (m, d + 1) and amplitudes |a_k| ||u_k|| at `theta`."""
        w, b, a = two_layer_neurons(self.model, unflatten_parameters(self.model, theta))
        u = neuron_vectors(w, b)
        a_rows = a.detach().cpu().double().numpy().reshape(len(u), -1)
        return u, np.linalg.norm(a_rows, axis=1) * np.linalg.norm(u, axis=1)

    def alignment(self, theta: np.ndarray, fraction: float) -> float:
        return top_neuron_alignment(*self.neurons(theta), fraction)


def deviation(cfg: LossSpikeConfig, run: RunData, spike: Spike, traj: _Trajectory) -> dict[str, Any]:
    """The spike's deviation on the grid of ``cfg.grid_points`` points of the data interval:
    Delta theta = theta(t_p) - theta(t_o), v_1 the top Hessian eigenvector at t_o (each at the
    nearest probe step), ``coef`` = Delta theta . v_1, ``top`` = delta f_1(x) = coef J(x; theta(t_o)) v_1
    and ``rest`` = f(x; theta(t_p)) - f(x; theta(t_o)) - delta f_1(x)."""
    vec = run.artifact("hessian/top_eigenvector")
    s_o, theta_o = traj.at(spike.onset)
    s_p, theta_p = traj.at(spike.peak)
    v = vec["values"][nearest_index(vec["steps"], spike.onset)]
    delta = theta_p - theta_o
    coef = float(delta @ v)
    low, high = cfg.data.interval
    grid = np.linspace(low, high, cfg.grid_points)[:, None]
    top = coef * directional_derivative(traj.model, theta_o, v, grid)[:, 0]
    full = (function_values(traj.model, theta_p, grid) - function_values(traj.model, theta_o, grid))[:, 0]
    return {"steps": (s_o, s_p), "delta": delta, "coef": coef, "grid": grid[:, 0], "top": top, "rest": full - top}


def slas(loss: pd.Series, sharpness: pd.Series, start: float, stop: float) -> tuple[float | None, int]:
    """Spearman's rho of L(t) and lambda_max(t) over the probe steps start <= t <= stop, and the
    number of pairs (`window_spearman`). SLAS (smaller loss as sharper, arXiv:2305.12133): rho < 0."""
    return window_spearman(loss, sharpness, start, stop)


def _spike_measures(cfg: LossSpikeConfig, run: RunData, control: RunData | None, spike: Spike, loss: pd.Series,
                    traj: _Trajectory, control_traj: _Trajectory | None, previous_end: int | None) -> dict[str, Any]:
    """Everything the checks need about one spike (see the module docstring)."""
    lr = cast(RunSpec, run.spec).train.lr
    limit = 2.0 / lr
    lam = run.series("hessian/top_0")
    lam_steps, lam_values = lam.index.to_numpy(), lam.to_numpy()

    def lam_at(step: int | None) -> tuple[int | None, float | None]:
        if step is None or not len(lam_steps):
            return None, None
        i = nearest_index(lam_steps, step)
        return int(lam_steps[i]), float(lam_values[i])

    out: dict[str, Any] = {"t_o": spike.onset, "t_p": spike.peak, "t_e": spike.end, "L(t_o)": spike.onset_loss,
                           "L(t_p)": spike.peak_loss, "L(t_p)/L(t_o)": spike.factor, "2/eta": limit}
    for name, step in (("t_o", spike.onset), ("t_p", spike.peak), ("t_e", spike.end)):
        at, value = lam_at(step)
        out[f"lambda_max({name})"] = value
        out[f"lambda_max({name}) / (2/eta)"] = None if value is None else value / limit
        out[f"probe step for {name}"] = at
    # SLAS: Spearman of L and lambda_max over the probe steps in [t_o - window, t_o], from the
    # previous spike's end on when that is later (its descent is not this spike's approach)
    start = spike.onset - cfg.slas_window
    clipped = max(start, previous_end) if cfg.slas_after_previous_spike and previous_end is not None else start
    out["rho_SLAS"], out["SLAS points"] = slas(loss, lam, clipped, spike.onset)
    out["SLAS window"] = [max(clipped, 0), spike.onset]
    if clipped != start:  # reported, not judged: the full window across the previous spike
        out["rho_SLAS over the full window"] = slas(loss, lam, start, spike.onset)[0]
    # the deviation theta(t_p) - theta(t_o) and the top eigendirection at t_o
    dev = deviation(cfg, run, spike, traj)
    s_o, s_p, delta, coef = dev["steps"][0], dev["steps"][1], dev["delta"], dev["coef"]
    top_change, rest = dev["top"], dev["rest"]
    full_change = top_change + rest
    out.update({
        "deviation steps": [s_o, s_p],
        "|Delta theta|": float(np.linalg.norm(delta)),
        "share of |Delta theta|^2 along v_1": coef**2 / float(delta @ delta) if float(delta @ delta) > 0 else None,
        "|delta f_1| / |f(t_p) - f(t_o)|": finite_or_none(
            float(np.linalg.norm(top_change) / np.linalg.norm(full_change))),
        "rho_LF(top)": finite_or_none(low_frequency_share(top_change, cfg.low_fraction)),
        "rho_LF(non-top)": finite_or_none(low_frequency_share(rest, cfg.low_fraction)),
        # reported, not judged: the same shares without the zero frequency (the mean of the change)
        "rho_LF(top), mean removed": finite_or_none(
            low_frequency_share(top_change - top_change.mean(), cfg.low_fraction)),
        "rho_LF(non-top), mean removed": finite_or_none(low_frequency_share(rest - rest.mean(), cfg.low_fraction)),
    })
    out["rho_LF(top) - rho_LF(non-top)"] = (None if out["rho_LF(top)"] is None or out["rho_LF(non-top)"] is None
                                             else out["rho_LF(top)"] - out["rho_LF(non-top)"])
    # condensation at t_o and t_e + after_steps, in the run and in the control
    after = (None if spike.end is None or spike.end + cfg.after_steps > cast(RunSpec, run.spec).train.steps
             else spike.end + cfg.after_steps)
    out["condensation steps"] = [spike.onset, after]
    for name, tr in (("", traj), ("control ", control_traj)):
        before_v = after_v = None
        if tr is not None:
            before_v = finite_or_none(tr.alignment(tr.at(spike.onset)[1], cfg.top_fraction))
            if after is not None:
                after_v = finite_or_none(tr.alignment(tr.at(after)[1], cfg.top_fraction))
        out[f"{name}mean |cos| before"] = before_v
        out[f"{name}mean |cos| after"] = after_v
        out[f"{name}gain"] = None if before_v is None or after_v is None else after_v - before_v
    out["gain - control gain"] = (None if out["gain"] is None or out["control gain"] is None
                                  else out["gain"] - out["control gain"])
    if after is not None:  # how far the neurons moved over the same steps (reported, not judged)
        u_o, u_a = traj.neurons(traj.at(spike.onset)[1])[0], traj.neurons(traj.at(after)[1])[0]
        cos = np.sum(u_o * u_a, axis=1) / (np.linalg.norm(u_o, axis=1) * np.linalg.norm(u_a, axis=1))
        out["RD of (w, b) from t_o to t_e + after_steps"] = float(np.linalg.norm(u_a - u_o) / np.linalg.norm(u_o))
        out["largest neuron rotation (degrees)"] = float(np.degrees(np.arccos(np.clip(cos, -1, 1)).max()))
    return out


def analyze(cfg: LossSpikeConfig, runs: list[RunData]) -> dict[str, Any]:
    """Per seed: the spikes of every c's run, the chosen c (the first in ``cs`` with a spike) and,
    for each of its spikes, the measures of `_spike_measures`."""
    by_rate = _by_rate(cfg, runs)
    per_seed: dict[str, Any] = {}
    for seed in cfg.seeds:
        rows: dict[str, Any] = {}
        chosen: float | None = None
        spikes: list[Spike] = []
        for c in cfg.cs:
            run = by_rate[Rate(seed, c)]
            spec = cast(RunSpec, run.spec)  # a training run: it has its RunSpec
            if run.status != "done":
                rows[f"c={c:g}"] = {"status": run.status, "lr": spec.train.lr}
                continue
            loss = run.series("loss")
            found = detect_spikes(loss.index.to_numpy(), loss.to_numpy(), cfg.spike_factor)
            lam = run.series("hessian/top_0")
            rows[f"c={c:g}"] = {"lr": spec.train.lr, "2/eta": 2.0 / spec.train.lr, "spikes": len(found),
                                "lambda_max(0)": float(lam.iloc[0]) if len(lam) else None,
                                "final loss": float(loss.iloc[-1]) if len(loss) else None,
                                "max lambda_max / (2/eta)": (float(lam.max()) * spec.train.lr / 2.0
                                                             if len(lam) else None)}
            if chosen is None and found:
                chosen, spikes = c, found
        entry: dict[str, Any] = {"per_c": rows, "chosen_c": chosen, "spikes": []}
        if chosen is not None:
            run, control = by_rate[Rate(seed, chosen)], by_rate[Rate(seed, chosen, control=True)]
            control_ok = control if control.status == "done" else None
            loss = run.series("loss")
            traj = _Trajectory(run)
            control_traj = _Trajectory(control_ok) if control_ok is not None else None
            entry["lr"] = cast(RunSpec, run.spec).train.lr
            entry["control lr"] = cast(RunSpec, control.spec).train.lr
            entry["control spikes"] = (len(detect_spikes(control.series("loss").index.to_numpy(),
                                                         control.series("loss").to_numpy(), cfg.spike_factor))
                                       if control_ok is not None else None)
            entry["spikes"] = [_spike_measures(cfg, run, control_ok, s, loss, traj, control_traj,
                                               spikes[i - 1].end if i else None) for i, s in enumerate(spikes)]
        per_seed[str(seed)] = entry
    every = [s for e in per_seed.values() for s in e["spikes"]]

    def worst(key: str, fn: Any) -> float | None:
        values = [s[key] for s in every if s.get(key) is not None]
        return fn(values) if values else None

    return {
        "per_seed": per_seed,
        "fewest_spikes": min(len(e["spikes"]) for e in per_seed.values()),
        "min_onset_ratio": worst("lambda_max(t_o) / (2/eta)", min),
        "max_end_ratio": worst("lambda_max(t_e) / (2/eta)", max),
        "max_slas": worst("rho_SLAS", max),
        "min_low_share": worst("rho_LF(top)", min),
        "min_low_share_margin": worst("rho_LF(top) - rho_LF(non-top)", min),
        "min_gain": worst("gain", min),
        "min_gain_over_control": worst("gain - control gain", min),
        "failure": failed_runs(runs),
    }


# ----------------------------------------------------------------------------------- verdict
def verdict(cfg: LossSpikeConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    over = "over every spike"
    checks = (
        Check("spikes detected (fewest over seeds; the first c of cs that spikes)", summary["fewest_spikes"], ">=", 1,
              paper="protocol: >= 1 spike in 20k steps (docs/specs/loss-spike.md)"),
        Check(f"lambda_max(t_o) / (2/eta), smallest {over}", summary["min_onset_ratio"], ">=", c.onset_ratio,
              paper="ascent once lambda_max > 2/eta"),
        Check(f"lambda_max(t_e) / (2/eta), largest {over}", summary["max_end_ratio"], "<", c.end_ratio,
              paper="descent after escape to a flatter region"),
        Check(f"rho_SLAS = Spearman(L, lambda_max) over the {cfg.slas_window} steps before t_o"
              + (" (from the previous spike's end, if later)" if cfg.slas_after_previous_spike else "")
              + f", largest {over}",
              summary["max_slas"], "<=", c.max_slas, paper="lower loss is sharper (SLAS)"),
        Check(f"rho_LF of the top-eigendirection change (lowest {cfg.low_fraction:.0%} of frequencies), "
              f"smallest {over}", summary["min_low_share"], ">=", c.min_low_share,
              paper="the top-direction deviation is low-frequency"),
        Check(f"rho_LF(top) - rho_LF(non-top directions), smallest {over}", summary["min_low_share_margin"], ">", 0.0,
              paper="lower-frequency than the rest of the change"),
        Check(f"mean |cos| of the top {cfg.top_fraction:.0%} neurons, (t_e + {cfg.after_steps}) - t_o, smallest {over}",
              summary["min_gain"], ">=", c.min_condensation_gain, paper="spikes facilitate condensation"),
        Check(f"that gain minus the eta/{cfg.control_divisor:g} control's gain over the same steps, smallest {over}",
              summary["min_gain_over_control"], ">", 0.0, paper="control without spikes condenses less"),
    )
    details: dict[str, Any] = {}
    for seed, entry in summary["per_seed"].items():
        details[f"seed {seed}: runs per c (eta = c 2 / lambda_max(theta_0))"] = {
            k: {kk: round_sig(vv) for kk, vv in v.items()} for k, v in entry["per_c"].items()}
        if entry["chosen_c"] is None:
            details[f"seed {seed}: chosen c"] = f"none of {cfg.cs} gave a spike in {cfg.train.steps} steps"
            continue
        details[f"seed {seed}: chosen c"] = (f"c = {entry['chosen_c']:g}, eta = {entry['lr']:.5g}, "
                                            f"2/eta = {2 / entry['lr']:.5g}; control eta = {entry['control lr']:.5g} "
                                            f"({entry['control spikes']} spikes)")
        for i, s in enumerate(entry["spikes"]):
            details[f"seed {seed}: spike {i + 1}"] = {k: round_sig(v) for k, v in s.items() if not k.startswith("_")}
    return Verdict("loss-spike", checks, source=SOURCE, failure=summary["failure"], details=details)


# ----------------------------------------------------------------------------------- figures
def figures(cfg: LossSpikeConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    by_rate = _by_rate(cfg, runs)
    out: dict[str, Any] = {}
    for seed, entry in summary["per_seed"].items():
        chosen = entry["chosen_c"]
        c_show = chosen if chosen is not None else cfg.cs[0]
        run = by_rate.get(Rate(int(seed), c_show))
        if run is None or run.status != "done":
            continue
        loss, lam = run.series("loss"), run.series("hessian/top_0")
        limit = 2.0 / cast(RunSpec, run.spec).train.lr
        spikes = [(s["t_o"], s["t_p"], s["t_e"]) for s in entry["spikes"]]
        name = f"seed={seed}, c={c_show:g}"
        out[f"loss and lambda_max ({name})"] = plots.loss_and_sharpness(
            loss.index.to_numpy(), loss.to_numpy(), lam.index.to_numpy(), lam.to_numpy(), limit, spikes=spikes,
            title=f"GD with eta = {c_show:g} x 2/lambda_max(0): loss and sharpness ({name})")
        if not entry["spikes"]:
            continue
        first = entry["spikes"][0]
        dev = deviation(cfg, run, Spike(first["t_o"], first["t_p"], first["t_e"], first["L(t_o)"], first["L(t_p)"]),
                        _Trajectory(run))
        t_o, t_e = first["t_o"], first["t_e"] if first["t_e"] is not None else first["t_p"]
        lo, hi = max(0, t_o - cfg.slas_window), t_e + cfg.after_steps
        lwin, swin = loss.loc[lo:hi], lam.loc[lo:hi]
        out[f"first spike, zoomed ({name})"] = plots.loss_and_sharpness(
            lwin.index.to_numpy(), lwin.to_numpy(), swin.index.to_numpy(), swin.to_numpy(), limit,
            spikes=spikes[:1], title=f"first spike: steps {lo} to {hi} ({name})")
        out[f"function change from t_o to t_p ({name})"] = plots.curves(
            dev["grid"], {"along the top eigendirection, delta f_1": dev["top"],
                          "along the other directions": dev["rest"]},
            title=f"deviation f(t_p) - f(t_o), first spike ({name})", xlabel="x", ylabel="function change")
        n = len(dev["grid"])
        k = np.arange(n // 2 + 1)
        spectra = {"top eigendirection": np.abs(np.fft.rfft(dev["top"])) ** 2,
                   "other directions": np.abs(np.fft.rfft(dev["rest"])) ** 2}
        out[f"spectrum of the function change ({name})"] = plots.curves(
            k, spectra,
            title=f"DFT energy of the deviation; low band: k < {math.ceil(cfg.low_fraction * (n // 2 + 1))}",
            xlabel="frequency index k", ylabel="|DFT|^2", logy=True,
            marks={"low-frequency band edge": math.ceil(cfg.low_fraction * (n // 2 + 1)) - 0.5})
        control = by_rate.get(Rate(int(seed), c_show, control=True))
        series = {}
        for tag, r in (("eta", run), (f"eta/{cfg.control_divisor:g} (control)", control)):
            if r is None or r.status != "done":
                continue
            traj = _Trajectory(r)
            series[tag] = (traj.steps, [traj.alignment(t, cfg.top_fraction) for t in traj.theta])
        if series:
            steps = next(iter(series.values()))[0]
            out[f"condensation over training ({name})"] = plots.curves(
                steps, {k: np.interp(steps, s, v) for k, (s, v) in series.items()},
                title=f"mean |cos| of the top {cfg.top_fraction:.0%} neurons' (w, b) ({name})",
                ylabel="mean |cos|", marks={f"spike {i + 1} onset": s[0] for i, s in enumerate(spikes)})
    return out


EXPERIMENT = register(Experiment(
    name="loss-spike",
    title="Loss spikes at the edge of stability (GD): sharpness, low-frequency deviation, condensation",
    source=SOURCE,
    claim="In full-batch GD every loss spike starts once the top Hessian eigenvalue exceeds 2/eta after a stretch "
          "where lower loss came with larger sharpness, its deviation along the top eigendirection is "
          "low-frequency, and the spike increases condensation.",
    config=LossSpikeConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
