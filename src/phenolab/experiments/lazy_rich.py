"""Lazy versus rich: the output scale alpha sets how far the NTK moves, and grokking is the late
transition from the lazy fit to feature learning.

Kumar, Bordelon, Gershman, Pehlevan (2023), "Grokking as the transition from lazy to rich training
dynamics", arXiv:2310.06110 (section 5, Figs. 1, 3a, 4, 7, 9; App. 8.1), and Chizat, Oyallon, Bach
(2019), "On lazy training in differentiable programming", arXiv:1812.07956. Protocol,
checks and numpy pilot: docs/specs/lazy-rich.md.

Model (the committee machine): f(x) = (alpha/N) sum_{i=1}^N phi(w_i . x), phi(h) = h + (eps/2) h^2,
readouts fixed to 1, trained as the centred predictor f(x; theta) - f(x; theta_0). Task:
y = (1/2) (beta . x)^2 with x ~ N(0, I/D), beta ~ N(0, I_D), P training points. With
wbar = (1/N) sum w_i and M = (1/N) sum w_i w_i^T the predictor is alpha wbar . x + (alpha eps/2) x^T M x.

In phenolab's terms (every run is a RunSpec; the plan sets the per-run fields):

* model: ``width = N``, ``activation = quadratic`` with ``activation_param = eps``, ``bias = false``,
  ``fixed_readout = 1``, ``centered = true``, ``parametrization = standard`` with ``init.std = 1``
  (w_i ~ N(0, I_D)), and ``output_scale = alpha / N`` (the plan's, per alpha);
* data: ``quadratic_teacher`` (``input_dim = D``, ``n_train = P``, ``n_test`` held-out points);
* train: full-batch GD with ``lr = eta0 N / (2 alpha^2)``: the protocol's eta = eta0 N / alpha^2 on its
  loss (1/2P) sum (f - y)^2, halved because phenolab's MSE has no 1/2 (its gradient is twice the
  protocol's). The numpy pilot's table is reproduced with this reading: its t_tr, t_te and final test
  losses match runs whose *reported* test loss is mean (f - y)^2 (no 1/2) and whose gradient is
  that of the (1/2P) loss (checked against a re-implementation of the pilot, several seeds).
  Time is reported as tau = eta0 * step, the pilot's step count (it used eta0 = 1): in the gradient-
  flow regime (here eta0 lambda_max(K)/P ~ 0.05 eta0) a run at eta0 = 4 for T steps follows the
  run at eta0 = 1 for 4 T steps, which is what the quick preset uses.

Measurements (probes): ``loss`` (train / test MSE), ``weight_moments`` (wbar, M and their change
from the initialization), ``fresh_loss`` (Monte-Carlo test MSE on fresh Gaussian inputs),
``ntk_heldout`` (the paper's uncentred "CKA" y^T K y / (||K||_F ||y||^2) on held-out points),
``ntk_change`` (||K_t - K_0||_F / ||K_0||_F on the training points) and ``ntk_regression`` (the
test MSE of ridgeless regression with the NTK at initialization: the lazy baseline).

Checks (per alpha, on the seed mean of the normalized curves test(t)/test(0), train(t)/train(0)):

* GROK-1 (delay t_te - t_tr increasing in alpha, t_tr: train < 0.1 x initial, t_te: test < 0.5 x
  initial; the memorize-first bump; the kernel-regression baseline), GROK-2 (eq. 6 with centred
  statistics, `phenolab.probes.moments.decomposition`, against the Monte-Carlo test MSE on
  ``fresh_points`` fresh inputs at the ``weight_moments`` / ``fresh_loss`` checkpoints, every run:
  largest relative deviation <= 5 %; the Monte-Carlo error, ~ sqrt(32/n) at initialization, is
  reported beside it) and GROK-3 (CKA growth at alpha <= 1): as in docs/specs/lazy-rich.md.
* Lazy training (Chizat et al.): the relative kernel distance ||K_T - K_0||_F / ||K_0||_F at the end
  of training decreases strictly as alpha grows; its log-log slope against alpha (lazy theory: the
  weights move O(1/alpha), so ~ -1) must be <= -0.5 (phenolab's bound, not the protocol's).
* Misalignment (the paper's second knob): at alpha = ``misalignment_alpha`` the activation's eps is
  varied (``misalignment_eps``, default 0.1, 0.2, 0.4). The initial NTK is K_0 = x.x' + eps^2 (x.x')^2
  (infinite N), whose only quadratic part, the one that can fit y, is weighted by eps^2: a lower eps
  is a lower initial kernel-target alignment (measured: CKA at step 0) and, by the paper, a longer
  delay. Pass: the initial CKA increases strictly with eps and the delay t_te - t_tr decreases
  strictly with eps. Lower eps slows all of training: t_tr grows as well, and in the pilot's setting
  the ratio t_te / t_tr even grows with eps (full preset: 1.55, 1.76, 2.36 at eps 0.1, 0.2, 0.4),
  so the check is on the absolute delay, as the paper words it; t_te / t_tr and the size of the
  memorize-first bump (larger at lower eps) are reported beside it.

Presets: ``quick`` is the protocol's short variant (alpha in {0.5, 1, 2}, tau up to 12000) at its
sizes with eta0 = 8 (1500 steps) and two seeds; ``full`` is the pilot (alpha in {0.5, 1, 2, 4},
eta0 = 1, 20000 steps) with five seeds and 40k fresh points for GROK-2.

Seeds: each seed draws its own beta, data and weights (``data.seed`` unset); the realization
matters a lot in this Goldilocks regime (P = 4 D, P << D^2 / (2 eps)): at the protocol's sizes the
test loss at alpha = 4 reaches 0.5 x its initial value anywhere between ~3k and >20k steps
depending on the draw, so the checks use seed means of the curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from pydantic import model_validator

from phenolab.config import (
    ExperimentSpec,
    InitSpec,
    MLPSpec,
    PosFloat,
    ProbeSpec,
    QuadraticTeacherData,
    RunSpec,
    Seeds,
    Spec,
    TrainSpec,
)
from phenolab.experiments.analysis import (
    first_step_below,
    fit_slope,
    fmt,
    max_step,
    mean_curve,
    mean_normalized_curve,
    mean_or_none,
    min_step,
)
from phenolab.experiments.base import (
    Experiment,
    Planned,
    RunData,
    by_condition,
    conditions_of,
    register,
    with_conditions,
)
from phenolab.experiments.figures import aligned_curves
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.probes.moments import decomposition
from phenolab.report import plots
from phenolab.tasks import make_task

SOURCE = ("arXiv:2310.06110 (Kumar et al. 2023, grokking as lazy -> rich: committee machine, Figs. 1, 3a, 4, 7; "
          "App. 8.1); arXiv:1812.07956 (Chizat et al. 2019, lazy training and the output scale alpha)")

# the numpy pilot (D = 50, N = 200, P = 200, eps = 0.2, eta0 = 1, 20000 steps; test loss at init 0.477)
PILOT = {
    0.5: {"t_tr": 400, "t_te": 900, "delay": 500, "max_test": 0.541, "final_test": 0.058},
    1.0: {"t_tr": 600, "t_te": 1700, "delay": 1100, "max_test": 0.560, "final_test": 0.102},
    2.0: {"t_tr": 1000, "t_te": 3700, "delay": 2700, "max_test": 0.575, "final_test": 0.160},
    4.0: {"t_tr": 1500, "t_te": 11500, "delay": 10000, "max_test": 0.584, "final_test": 0.225},
}
PILOT_INIT_TEST = 0.477
PILOT_KR_TEST = 0.406
PILOT_CKA = {"init": 0.023, 0.5: 0.114, 1.0: 0.063, 4.0: 0.030}  # after 8000 steps


class LazyRichCheck(Spec):
    """GROK-1/2/3 thresholds and phenolab's bounds for the lazy-training and misalignment parts."""

    train_drop: PosFloat = 0.1  # t_tr: train loss < train_drop x initial
    test_drop: PosFloat = 0.5  # t_te: test loss < test_drop x initial
    min_delay_ratio: float = 4.0  # delay(alpha_max) / delay(alpha_min)
    bump_alpha: float = 2.0  # the memorize-first bump is required at alpha >= bump_alpha
    min_bump: float = 1.1  # max_t test / initial test
    max_kr_fraction: float = 0.5  # final test(alpha_min) / initial-NTK kernel regression test
    max_decomposition_error: float = 0.05  # |eq. 6 - Monte Carlo| / Monte Carlo
    growth_alpha: float = 1.0  # CKA growth is required at alpha <= growth_alpha
    min_alignment_growth: float = 1.5  # CKA_final / CKA_init
    max_distance_slope: float = -0.5  # slope of log ||K_T - K_0|| / ||K_0|| against log alpha


def _probe_every(probes: list[ProbeSpec], name: str) -> int | None:
    return next((p.every for p in probes if p.name == name), None)


class LazyRichConfig(ExperimentSpec):
    """The pilot's protocol. Per run the plan sets ``model.output_scale = alpha / N``, ``train.lr =
    eta0 N / (2 alpha^2)`` and, for the misalignment runs, ``model.activation_param = eps``; the
    alpha sweep uses ``model.activation_param`` as its eps."""

    experiment: str = "lazy-rich"
    seeds: Seeds = [0, 1, 2]
    alphas: list[PosFloat] = [0.5, 1.0, 2.0, 4.0]
    eta0: PosFloat = 1.0
    misalignment_alpha: PosFloat = 1.0
    misalignment_eps: list[PosFloat] = [0.1, 0.2, 0.4]
    model: MLPSpec = MLPSpec(width=200, activation="quadratic", activation_param=0.2, bias=False,
                                 fixed_readout=1.0, centered=True, init=InitSpec(std=1.0))
    data: QuadraticTeacherData = QuadraticTeacherData(input_dim=50, n_train=200, n_test=2000)
    train: TrainSpec = TrainSpec(optimizer="gd", lr=1.0, steps=20000, probe_every=100)
    probes: list[ProbeSpec] = [
        ProbeSpec(name="loss"),
        ProbeSpec(name="weight_moments", every=5000),
        ProbeSpec(name="fresh_loss", every=5000, options={"points": 10000}),
        ProbeSpec(name="ntk_heldout", every=5000, options={"points": 400}),
        ProbeSpec(name="ntk_change", every=5000, options={"points": 200}),
        ProbeSpec(name="ntk_regression", every=10**9, options={"points": 2000}),
    ]
    check: LazyRichCheck = LazyRichCheck()  # type: ignore[assignment]  # narrows ExperimentSpec.check by design

    @model_validator(mode="after")
    def _checks(self) -> LazyRichConfig:
        self.require_probes("loss", "weight_moments", "fresh_loss", "ntk_heldout", "ntk_change", "ntk_regression")
        m = self.model
        if (len(m.hidden_widths) != 1 or m.activation != "quadratic" or m.parametrization != "standard" or m.bias
                or m.output_bias or m.fixed_readout is None or not m.centered):
            raise ValueError("model: the analysis (eq. 6, alpha = output_scale * N * fixed_readout) is for the "
                             "committee machine: depth 1, activation=quadratic, parametrization=standard, bias=false, "
                             "fixed_readout set, centered=true")
        if self.data.n_test < 1:
            raise ValueError(f"data.n_test: the test loss needs held-out points, must be >= 1, got {self.data.n_test}")
        if self.train.optimizer != "gd" or self.train.batch_size is not None:
            raise ValueError("train.optimizer: the protocol (docs/specs/lazy-rich.md) trains with full-batch GD; "
                             "must be gd without batch_size, "
                             f"got {self.train.optimizer!r} (batch_size {self.train.batch_size})")
        if len(set(self.alphas)) < 2:
            raise ValueError(f"alphas: comparing output scales needs at least two different alphas, got {self.alphas}")
        if len(set(self.misalignment_eps)) < 2:
            raise ValueError(f"misalignment_eps: needs at least two different eps, got {self.misalignment_eps}")
        if _probe_every(self.probes, "weight_moments") != _probe_every(self.probes, "fresh_loss"):
            raise ValueError("probes: weight_moments and fresh_loss must share their `every` (eq. 6 is compared with "
                             "the Monte-Carlo loss at the same steps), got "
                             f"{_probe_every(self.probes, 'weight_moments')} and "
                             f"{_probe_every(self.probes, 'fresh_loss')}")
        return self

    @property
    def epsilon(self) -> float:
        """The eps of the alpha sweep (``model.activation_param``)."""
        return float(self.model.activation_param if self.model.activation_param is not None else 1.0)

    def sweep_alphas(self) -> list[float]:
        return sorted(set(float(a) for a in self.alphas))

    def sweep_eps(self) -> list[float]:
        return sorted(set(float(e) for e in self.misalignment_eps))


def _probes(every: int, fresh: int, regression: int, heldout: int = 400, change: int = 200) -> list[dict[str, Any]]:
    """A preset's probes: checkpoints every `every` steps, with these numbers of points."""
    return [{"name": "loss"}, {"name": "weight_moments", "every": every},
            {"name": "fresh_loss", "every": every, "options": {"points": fresh}},
            {"name": "ntk_heldout", "every": every, "options": {"points": heldout}},
            {"name": "ntk_change", "every": every, "options": {"points": change}},
            {"name": "ntk_regression", "every": 10**9, "options": {"points": regression}}]


PRESETS = {
    # the protocol's short variant ("alpha in {0.5, 1, 2} with 12k steps if time is short") at its sizes, two
    # seeds; 8x the learning rate for 1/8 of the steps (tau = eta0 * step runs to 12000): in a numpy
    # re-implementation of the pilot (3 draws, alpha 0.5 and 4) eta0 = 8 against eta0 = 1 moved t_tr by <= 6 %,
    # t_te by about one probe interval, the bump by <= 0.03 and the final test loss by < 2 %. Test curve on
    # 1000 held-out points every 10 steps (tau resolution 80). ~25 s of CPU.
    "quick": {"seeds": [0, 1], "alphas": [0.5, 1.0, 2.0], "eta0": 8.0, "train": {"steps": 1500, "probe_every": 10},
              "data": {"n_test": 1000}, "probes": _probes(375, fresh=10000, regression=1000)},
    # the pilot's protocol: eta0 = 1, 20000 steps, P_test = 2000, 5 seeds. GROK-2 on 40k fresh points instead
    # of the protocol's 10k: at initialization (f - y)^2 = y^2 and the Monte-Carlo mean of 10k points has a
    # relative standard error of ~3.4 %, so 5 seeds would exceed 5 % with probability ~1/2 by noise alone;
    # with 40k (1.7 %) a deviation above 5 % means the identity fails
    "full": {"seeds": [0, 1, 2, 3, 4], "probes": _probes(5000, fresh=40000, regression=2000)},
    # the smallest run of the whole pipeline (contract tests): one seed, two alphas (one with the bump
    # check), width 10, 40 steps
    "smoke": {"seeds": [0], "alphas": [0.5, 2.0], "misalignment_alpha": 0.5, "misalignment_eps": [0.1, 0.2],
              "model": {"width": 10},
              "data": {"input_dim": 5, "n_train": 20, "n_test": 20}, "train": {"steps": 40, "probe_every": 10},
              "probes": _probes(20, fresh=100, regression=20, heldout=20, change=20)},
}


def label(alpha: float, eps: float, seed: int) -> str:
    return f"alpha={alpha:g},eps={eps:g},seed={seed}"


def run_lr(cfg: LazyRichConfig, alpha: float) -> float:
    """phenolab's ``train.lr`` = eta0 N / (2 alpha^2): the pilot's eta0 N / alpha^2, halved for the MSE without 1/2."""
    return cfg.eta0 * cfg.model.hidden_widths[0] / (2.0 * alpha**2)


def conditions(cfg: LazyRichConfig) -> list[tuple[float, float]]:
    """(alpha, eps) of every run: the alpha sweep at the model's eps, then the misalignment runs
    (the one that is already in the sweep is not repeated)."""
    sweep = [(a, cfg.epsilon) for a in cfg.sweep_alphas()]
    extra = [(float(cfg.misalignment_alpha), e) for e in cfg.sweep_eps()]
    return sweep + [c for c in extra if c not in sweep]


@dataclass(frozen=True)
class Scale:
    """A run's condition: output scale alpha, activation eps and seed."""

    alpha: float
    eps: float
    seed: int


def plan(cfg: LazyRichConfig) -> list[Planned]:
    """One run per (alpha, eps) and seed; output scale alpha / N and lr eta0 N / (2 alpha^2) per run."""
    width = cfg.model.hidden_widths[0]
    return [Planned(label(a, e, s), cfg.run_spec(s, **{"model.output_scale": a / width, "model.activation_param": e,
                                                        "train.lr": run_lr(cfg, a)}), Scale(a, e, s))
            for s in cfg.seeds for a, e in conditions(cfg)]


# ------------------------------------------------------------------------------------ analysis
def effective_alpha(spec: RunSpec) -> float:
    """alpha of f = (alpha / N) sum_i phi(w_i . x): output_scale * N * fixed_readout."""
    m = cast(MLPSpec, spec.model)  # lazy-rich runs are MLPs
    return float(m.output_scale * m.hidden_widths[0] * (m.fixed_readout if m.fixed_readout is not None else 1.0))


def _tau(step: int | None, eta0: float) -> float | None:
    return None if step is None else float(step) * eta0


def _condition(cfg: LazyRichConfig, runs: list[RunData]) -> dict[str, Any]:
    """GROK-1/3 and kernel numbers of one (alpha, eps) over its finished seeds."""
    c = cfg.check
    done = [r for r in runs if r.status == "done" and len(r.series("loss/test")) > 1]
    if not done:
        return {"seeds": 0}
    train = mean_normalized_curve([r.series("loss") for r in done])
    test = mean_normalized_curve([r.series("loss/test") for r in done])
    t_tr = _tau(first_step_below(train, c.train_drop), cfg.eta0)
    t_te = _tau(first_step_below(test, c.test_drop), cfg.eta0)
    finals = [float(r.series("loss/test").iloc[-1]) for r in done]
    inits = [float(r.series("loss/test").iloc[0]) for r in done]
    kr = [float(r.series("ntk_regression/test").iloc[0]) for r in done]
    cka = [r.series("ntk_heldout/alignment") for r in done]
    dist = [r.series("ntk_change/distance") for r in done]
    dist_mean, cka_mean = mean_curve(dist), mean_curve(cka)
    return {
        "seeds": len(done),
        "t_tr": t_tr, "t_te": t_te, "delay": None if t_tr is None or t_te is None else t_te - t_tr,
        "init_test": mean_or_none(inits), "final_test": mean_or_none(finals),
        "final_test_ratio": float(test.iloc[-1]), "max_test_ratio": float(test.max()),
        "final_train_ratio": float(train.iloc[-1]),
        "kr_test": mean_or_none(kr), "kr_fraction": mean_or_none([f / k for f, k in zip(finals, kr)]),
        "cka_init": mean_or_none([float(s.iloc[0]) for s in cka]),
        "cka_final": mean_or_none([float(s.iloc[-1]) for s in cka]),
        "cka_growth": mean_or_none([float(s.iloc[-1] / s.iloc[0]) for s in cka]),
        "distance_final": mean_or_none([float(s.iloc[-1]) for s in dist]),
        "curve_tau": [float(t) * cfg.eta0 for t in test.index],
        "test_curve": [float(v) for v in test.to_numpy()],
        "train_tau": [float(t) * cfg.eta0 for t in train.index[::max(1, len(train) // 400)]],
        "train_curve": [float(v) for v in train.to_numpy()[::max(1, len(train) // 400)]],
        "checkpoint_tau": [float(t) * cfg.eta0 for t in dist_mean.index],
        "distance_curve": [float(v) for v in dist_mean.to_numpy()],
        "cka_curve": [float(v) for v in cka_mean.reindex(dist_mean.index).to_numpy()],
    }


def _grok2(cfg: LazyRichConfig, run: RunData) -> list[dict[str, float]]:
    """Eq. 6 against the Monte-Carlo test MSE at each checkpoint of one run."""
    if run.status != "done":
        return []
    spec = cast(RunSpec, run.spec)  # a training run: it has its RunSpec
    beta = make_task(spec.data, spec.seed, dtype=_dtype(spec)).info["beta"].double().numpy()
    means, moments = run.artifact("weight_moments/mean_change"), run.artifact("weight_moments/second_moment_change")
    mc, se = run.series("fresh_loss/mse"), run.series("fresh_loss/se")
    alpha, eps = effective_alpha(spec), float(cast(MLPSpec, spec.model).activation_param or 1.0)
    rows = []
    for step, w, M in zip(means["steps"], means["values"], moments["values"]):
        if int(step) not in mc.index:
            continue
        terms = decomposition(beta, w, M, alpha, eps)
        value = float(mc.loc[int(step)])
        rows.append({"tau": float(step) * cfg.eta0, **terms, "monte_carlo": value,
                     "se": float(se.loc[int(step)]), "rel_error": abs(terms["total"] - value) / value})
    return rows


def _dtype(spec: RunSpec) -> torch.dtype:
    return torch.float64 if spec.train.dtype == "float64" else torch.float32


def analyze(cfg: LazyRichConfig, runs: list[RunData]) -> dict[str, Any]:
    by_scale = by_condition(with_conditions(runs, conditions_of(plan(cfg))))
    alphas, eps_list, eps0 = cfg.sweep_alphas(), cfg.sweep_eps(), cfg.epsilon
    alpha_m = float(cfg.misalignment_alpha)

    def group(a: float, e: float) -> list[RunData]:
        return [by_scale[Scale(a, e, s)] for s in cfg.seeds if Scale(a, e, s) in by_scale]

    per_alpha = {a: _condition(cfg, group(a, eps0)) for a in alphas}
    per_eps = {e: _condition(cfg, group(alpha_m, e)) for e in eps_list}
    grok2 = {r.label: _grok2(cfg, r) for r in runs}
    worst = max(((lab, row) for lab, rows in grok2.items() for row in rows), key=lambda x: x[1]["rel_error"],
                default=(None, None))

    return {
        "alphas": alphas, "eps": eps_list, "epsilon": eps0, "misalignment_alpha": alpha_m,
        "per_alpha": {f"{a:g}": v for a, v in per_alpha.items()},
        "per_eps": {f"{e:g}": v for e, v in per_eps.items()},
        **summary_numbers(alphas, per_alpha, eps_list, per_eps),
        # GROK-2
        "grok2": grok2,
        "decomposition_max_error": None if worst[1] is None else worst[1]["rel_error"],
        "decomposition_worst": None if worst[1] is None else {"run": worst[0], **worst[1]},
        "decomposition_points": sum(len(rows) for rows in grok2.values()),
        "failure": failed_runs(runs),
    }


def summary_numbers(alphas: list[float], per_alpha: dict[float, dict[str, Any]], eps: list[float],
                    per_eps: dict[float, dict[str, Any]]) -> dict[str, float | None]:
    """The numbers GROK-1, the lazy-training and the misalignment checks compare, from the per-alpha
    and per-eps rows (keys ``delay``, ``final_test``, ``kr_fraction``, ``distance_final``,
    ``cka_init``; None where a row lacks one): the smallest step of the delays and of the final test
    losses between neighbouring alphas (> 0: strictly increasing), delay(alpha_max) / delay(alpha_min),
    the largest step of the kernel distance (< 0: strictly decreasing) and its log-log slope, the
    largest step of the delay between neighbouring eps (< 0: decreasing) and the smallest step of
    the initial CKA (> 0: increasing)."""

    def col(table: dict[float, dict[str, Any]], keys: list[float], key: str) -> list[Any]:
        return [table[k].get(key) for k in keys]

    delays, dist = col(per_alpha, alphas, "delay"), col(per_alpha, alphas, "distance_final")
    d_small, d_large = delays[0], delays[-1]
    return {
        "delay_min_increase": min_step(delays),
        "delay_ratio": (d_large / d_small) if d_small is not None and d_large is not None and d_small > 0 else None,
        "final_test_min_increase": min_step(col(per_alpha, alphas, "final_test")),
        "kr_fraction": per_alpha[alphas[0]].get("kr_fraction"),
        "distance_max_increase": max_step(dist),
        "distance_slope": fit_slope(alphas, dist) if all(v is not None and v > 0 for v in dist) else None,
        "eps_delay_max_increase": max_step(col(per_eps, eps, "delay")),
        "eps_cka_min_increase": min_step(col(per_eps, eps, "cka_init")),
    }


# ------------------------------------------------------------------------------------- verdict
def _pilot_list(key: str, alphas: list[float]) -> str:
    values = [f"{PILOT[a][key]:g}" if a in PILOT else "-" for a in alphas]
    return f"pilot {key} at alpha = {', '.join(f'{a:g}' for a in alphas)}: {', '.join(values)}"


def verdict(cfg: LazyRichConfig, summary: dict[str, Any]) -> Verdict:
    c = cfg.check
    alphas, per = summary["alphas"], summary["per_alpha"]
    small, large = alphas[0], alphas[-1]
    checks = [
        Check(f"GROK-1: delay t_te - t_tr strictly increasing in alpha (smallest step between neighbours, "
              f"tau = eta0 step; t_tr: train < {c.train_drop:g} x initial, t_te: test < {c.test_drop:g} x initial)",
              summary["delay_min_increase"], ">", 0.0, paper=_pilot_list("delay", alphas)),
        Check(f"GROK-1: delay(alpha={large:g}) / delay(alpha={small:g})", summary["delay_ratio"], ">=",
              c.min_delay_ratio, paper=(f"pilot {PILOT[large]['delay']:g} / {PILOT[small]['delay']:g} = "
                                        f"{PILOT[large]['delay'] / PILOT[small]['delay']:.3g}"
                                        if small in PILOT and large in PILOT else "")),
        Check("GROK-1: final test loss increasing in alpha (smallest step between neighbours)",
              summary["final_test_min_increase"], ">", 0.0, paper=_pilot_list("final_test", alphas)),
    ]
    for a in alphas:
        if a >= c.bump_alpha:
            pilot = f"pilot {PILOT[a]['max_test'] / PILOT_INIT_TEST:.3f}" if a in PILOT else ""
            checks.append(Check(f"GROK-1: max_t test / initial test at alpha={a:g}",
                                per[f"{a:g}"].get("max_test_ratio"), ">=", c.min_bump, paper=pilot))
    checks += [
        Check(f"GROK-1: final test(alpha={small:g}) / initial-NTK kernel-regression test (seed mean)",
              summary["kr_fraction"], "<", c.max_kr_fraction,
              paper=f"pilot {PILOT[0.5]['final_test']} / {PILOT_KR_TEST} = "
                    f"{PILOT[0.5]['final_test'] / PILOT_KR_TEST:.3f}"),
        Check(f"GROK-2: largest |eq. 6 - Monte Carlo| / Monte Carlo over {summary['decomposition_points']} checkpoints "
              f"(all runs; {_fresh_points(cfg)} fresh points)", summary["decomposition_max_error"], "<=",
              c.max_decomposition_error, paper="protocol: 10k fresh points; pilot within ~3 % (2000 test points)"),
    ]
    for a in alphas:
        if a <= c.growth_alpha:
            pilot = (f"pilot {PILOT_CKA[a] / PILOT_CKA['init']:.2f} ({PILOT_CKA['init']} -> {PILOT_CKA[a]}, 8000 steps)"
                     if a in PILOT_CKA else "")
            checks.append(Check(f"GROK-3: CKA_final / CKA_init at alpha={a:g} (seed mean)",
                                per[f"{a:g}"].get("cka_growth"), ">=", c.min_alignment_growth, paper=pilot))
    cka_small, cka_large = per[f"{small:g}"].get("cka_final"), per[f"{large:g}"].get("cka_final")
    checks += [
        Check(f"GROK-3: CKA_final(alpha={small:g}) - CKA_final(alpha={large:g})",
              None if cka_small is None or cka_large is None else cka_small - cka_large, ">", 0.0,
              paper="pilot 0.114 - 0.030 = 0.084 (8000 steps)"),
        Check("lazy: largest increase of ||K_T - K_0||_F / ||K_0||_F from one alpha to the next (< 0: decreasing)",
              summary["distance_max_increase"], "<", 0.0, paper="Chizat et al.: distance ~ 1/alpha"),
        Check("lazy: slope of log ||K_T - K_0||_F / ||K_0||_F against log alpha", summary["distance_slope"], "<=",
              c.max_distance_slope, paper="lazy theory -1 (not in the pilot of docs/specs/lazy-rich.md)"),
        Check(f"misalignment: largest increase of the delay from one eps to the next at alpha="
              f"{summary['misalignment_alpha']:g}, eps = {', '.join(f'{e:g}' for e in summary['eps'])} "
              "(< 0: lower eps, longer delay)", summary["eps_delay_max_increase"], "<", 0.0,
              paper="paper: lower initial alignment (eps), more delay; not in the pilot"),
        Check("misalignment: smallest increase of the initial CKA from one eps to the next (> 0: lower eps, "
              "lower alignment)", summary["eps_cka_min_increase"], ">", 0.0,
              paper="K_0 = x.x' + eps^2 (x.x')^2: alignment grows with eps"),
    ]
    details: dict[str, Any] = {
        "per alpha (seed means; tau = eta0 * step; pilot in brackets)": {
            f"alpha={a:g}": _row(per[f"{a:g}"], PILOT.get(a)) for a in alphas},
        f"misalignment at alpha={summary['misalignment_alpha']:g} (seed means)": {
            f"eps={e:g}": _eps_row(summary["per_eps"][f"{e:g}"]) for e in summary["eps"]},
        "kernel distance ||K_T - K_0|| / ||K_0|| at the end": {
            f"alpha={a:g}": fmt(per[f"{a:g}"].get("distance_final")) for a in alphas},
        "GROK-2 worst checkpoint": _worst(summary["decomposition_worst"]),
        "initial test loss / initial-NTK kernel regression test (seed means)": {
            "test at init": fmt(per[f"{small:g}"].get("init_test")) + f" (pilot {PILOT_INIT_TEST})",
            "kernel regression": fmt(per[f"{small:g}"].get("kr_test")) + f" (pilot {PILOT_KR_TEST})"},
        "mapping": {"lr": "eta0 N / (2 alpha^2) (spec eta0 N / alpha^2 on a loss with 1/2)",
                    "output_scale": "alpha / N", "eta0": f"{cfg.eta0:g}", "seeds": str(list(cfg.seeds))},
    }
    return Verdict("lazy-rich", tuple(checks), source=SOURCE, failure=summary["failure"], details=details)


def _fresh_points(cfg: LazyRichConfig) -> int:
    probe = next(p for p in cfg.probes if p.name == "fresh_loss")
    return int(probe.options.get("points", 10000))


def _row(row: dict[str, Any], pilot: dict[str, float] | None) -> str:
    if not row.get("seeds"):
        return "no finished run"

    def p(key: str, scale: float = 1.0) -> str:
        return f" [{pilot[key] / scale:.4g}]" if pilot else ""

    return (f"t_tr {fmt(row['t_tr'])}{p('t_tr')}, t_te {fmt(row['t_te'])}{p('t_te')}, "
            f"delay {fmt(row['delay'])}{p('delay')}, max test/init {fmt(row['max_test_ratio'])}"
            f"{p('max_test', PILOT_INIT_TEST)}, final test {fmt(row['final_test'])}{p('final_test')} "
            f"(x init {fmt(row['final_test_ratio'])}{p('final_test', PILOT_INIT_TEST)}), "
            f"CKA {fmt(row['cka_init'])} -> {fmt(row['cka_final'])}, kernel distance {fmt(row['distance_final'])}")


def _eps_row(row: dict[str, Any]) -> str:
    if not row.get("seeds"):
        return "no finished run"
    ratio = row["t_te"] / row["t_tr"] if row["t_te"] is not None and row["t_tr"] else None
    return (f"CKA at init {fmt(row['cka_init'])}, t_tr {fmt(row['t_tr'])}, t_te {fmt(row['t_te'])}, "
            f"delay {fmt(row['delay'])} (t_te / t_tr {fmt(ratio, 3)}), max test/init {fmt(row['max_test_ratio'])}, "
            f"final test/init {fmt(row['final_test_ratio'])}")


def _worst(worst: dict[str, Any] | None) -> str:
    if worst is None:
        return "n/a"
    return (f"{worst['run']} at tau {worst['tau']:g}: eq. 6 = {fmt(worst['total'])} "
            f"(variance {fmt(worst['variance'])}, "
            f"misalignment {fmt(worst['misalignment'])}, linear {fmt(worst['linear'])}), Monte Carlo "
            f"{fmt(worst['monte_carlo'])} +- {fmt(worst['se'])} (rel. error {fmt(worst['rel_error'])})")


# ------------------------------------------------------------------------------------- figures
def figures(cfg: LazyRichConfig, runs: list[RunData], summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    per, alphas = summary["per_alpha"], summary["alphas"]
    rows = {f"alpha={a:g}": per[f"{a:g}"] for a in alphas if per[f"{a:g}"].get("seeds")}
    if rows:
        out["test loss over training"] = plots.curves(
            *aligned_curves(rows, "curve_tau", "test_curve"), xlabel="tau = eta0 * step", ylabel="test / initial",
            title="test loss / initial (seed mean): delayed generalization grows with alpha", logx=True,
            hlines={"t_te threshold": cfg.check.test_drop})
        out["train loss over training"] = plots.curves(
            *aligned_curves(rows, "train_tau", "train_curve"), title="train loss / initial (seed mean)",
            xlabel="tau = eta0 * step", ylabel="train / initial", logx=True, logy=True,
            hlines={"t_tr threshold": cfg.check.train_drop})
        out["kernel distance over training"] = plots.curves(
            *aligned_curves(rows, "checkpoint_tau", "distance_curve"), xlabel="tau = eta0 * step",
            title="||K_t - K_0||_F / ||K_0||_F on the training points (seed mean)", ylabel="relative kernel distance",
            markers=True)
        out["kernel-target alignment over training"] = plots.curves(
            *aligned_curves(rows, "checkpoint_tau", "cka_curve"), xlabel="tau = eta0 * step", ylabel="CKA",
            title="uncentred CKA y^T K y / (||K|| ||y||^2) on held-out points", markers=True)
    dist = [per[f"{a:g}"].get("distance_final") for a in alphas]
    if all(d is not None and d > 0 for d in dist):
        slope = summary["distance_slope"]
        out["kernel distance against alpha"] = plots.curves(
            alphas, {f"measured (slope {slope:.2f})": dist,
                     "1/alpha reference": [dist[0] * alphas[0] / a for a in alphas]},
            title="NTK movement at the end of training", xlabel="alpha", ylabel="||K_T - K_0|| / ||K_0||",
            logx=True, logy=True, markers=True)
    eps_rows = {f"eps={e:g}": summary["per_eps"][f"{e:g}"] for e in summary["eps"]
                if summary["per_eps"][f"{e:g}"].get("seeds")}
    if eps_rows:
        out["misalignment: test loss against eps"] = plots.curves(
            *aligned_curves(eps_rows, "curve_tau", "test_curve"),
            title=f"test loss / initial at alpha={summary['misalignment_alpha']:g}: "
                                            "lower eps, lower initial alignment", xlabel="tau = eta0 * step",
            ylabel="test / initial", logx=True, hlines={"t_te threshold": cfg.check.test_drop})
    grok2 = summary["grok2"]
    series: dict[str, list[float]] = {}
    taus: list[float] | None = None
    for a in (alphas[0], alphas[-1]):
        lab = label(a, summary["epsilon"], cfg.seeds[0])
        rows2 = grok2.get(lab) or []
        if rows2 and (taus is None or [r["tau"] for r in rows2] == taus):
            taus = [r["tau"] for r in rows2]
            series[f"eq. 6, alpha={a:g}"] = [r["total"] for r in rows2]
            series[f"Monte Carlo, alpha={a:g}"] = [r["monte_carlo"] for r in rows2]
    if taus:
        out["loss decomposition against Monte Carlo"] = plots.curves(
            taus, series, title=f"GROK-2: eq. 6 (centred statistics) vs fresh-sample test MSE, seed {cfg.seeds[0]}",
            xlabel="tau = eta0 * step", ylabel="test MSE", markers=True)
    return out


EXPERIMENT = register(Experiment(
    name="lazy-rich",
    title="Lazy vs rich: the output scale freezes the NTK, and grokking is the late escape from the lazy fit",
    source=SOURCE,
    claim="The larger the output scale alpha, the less the NTK moves (~1/alpha) and the later the test loss "
          "falls after the train loss (grokking as lazy -> rich); a lower initial kernel-target alignment "
          "delays generalization further.",
    config=LazyRichConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=plan,
))
