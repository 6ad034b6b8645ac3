"""lazy-rich: the planned runs are the protocol's committee machine (forward and one GD step), eq. 6 is
the population loss, the alpha sweep trains as one ensemble, the verdict on the pilot's
numbers (docs/specs/lazy-rich.md), and a reduced quick preset's verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import phenolab.experiments.lazy_rich as lr  # registers the experiment
from phenolab.config import ConfigError
from phenolab.execution import run_experiment
from phenolab.probes.registry import run_probe
from phenolab.store import Store
from phenolab.train import train
from phenolab.train.engines import build_run as build
from phenolab.train.ensemble import ensemble_key

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"data": {"input_dim": 8, "n_train": 24, "n_test": 16}, "model": {"width": 10},
         "train": {"dtype": "float64", "steps": 40}, "seeds": [0, 1]}


def _plan(**changes):
    cfg = lr.EXPERIMENT.resolve("quick", {**SMALL, **changes})
    return cfg, dict(lr.plan(cfg))


def phi(h, eps):
    return h + eps / 2 * h**2


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_planned_runs_are_the_spec_committee_and_one_gd_step_matches(alpha):
    """f = (alpha/N) sum_i [phi(w_i . x) - phi(w_i(0) . x)] and phenolab's GD step with lr = eta0 N / (2 alpha^2)
    on its MSE is the protocol's step with eta = eta0 N / alpha^2 on (1/2P) sum (f - y)^2."""
    cfg, plan = _plan()
    spec = plan[lr.label(alpha, 0.2, 0)]
    N, eta = 10, cfg.eta0 * 10 / alpha**2
    assert spec.model.output_scale == pytest.approx(alpha / N) and spec.train.lr == pytest.approx(eta / 2)
    task, model = build(spec)
    X, y = task.x_train, task.y_train[:, 0]
    W0 = model.layers[0].weight.detach().clone()
    assert W0.shape == (N, 8) and W0.std().item() == pytest.approx(1.0, abs=0.15)  # w_i ~ N(0, I_D)
    assert torch.equal(model(X), torch.zeros(24, 1, dtype=torch.float64))
    train(model, task, spec.train.model_copy(update={"steps": 1}))
    # the protocol's step: grad of (1/2P) sum r^2 with f(w) = (alpha/N) sum phi(w_i . x) (centred: r = -y at init)
    r = -y
    grad = alpha / N * ((r[:, None] * (1 + 0.2 * (X @ W0.T))).T @ X) / len(X)
    W1 = W0 - eta * grad
    torch.testing.assert_close(model.layers[0].weight.detach(), W1)
    expected = alpha / N * (phi(X @ W1.T, 0.2) - phi(X @ W0.T, 0.2)).sum(1)
    torch.testing.assert_close(model(X)[:, 0].detach(), expected)


def test_eq6_is_the_population_loss_of_the_centred_committee():
    """After some training: f = alpha dwbar . x + (alpha eps/2) x^T dM x exactly, and eq. 6 of those
    statistics matches a 200k-point Monte-Carlo test MSE within 4 standard errors."""
    cfg, plan = _plan()
    spec = plan[lr.label(1.0, 0.2, 0)]
    task, model = build(spec)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, task, spec.train.model_copy(update={"steps": 60}))
    moments = run_probe("weight_moments", model, task, reference=reference)
    dw, dM = moments["mean_change"], moments["second_moment_change"]
    alpha, eps = lr.effective_alpha(spec), 0.2
    x = task.x_test.double().numpy()
    f = alpha * x @ dw + alpha * eps / 2 * np.einsum("ni,ij,nj->n", x, dM, x)
    np.testing.assert_allclose(model(task.x_test).detach().numpy()[:, 0], f, rtol=1e-9, atol=1e-12)
    beta = task.info["beta"].double().numpy()
    terms = lr.decomposition(beta, dw, dM, alpha, eps)
    mc = run_probe("fresh_loss", model, task, points=200_000, seed=1)
    assert terms["total"] == pytest.approx(terms["variance"] + terms["misalignment"] + terms["linear"])
    assert abs(terms["total"] - mc["mse"]) < 4 * mc["se"], (terms, mc)
    # at initialization eq. 6 is E y^2 = (3/4) |beta|^4 / D^2
    zero = lr.decomposition(beta, 0 * dw, 0 * dM, alpha, eps)
    assert zero["total"] == pytest.approx(0.75 * (beta.ravel() @ beta.ravel()) ** 2 / 64)


def test_the_alpha_sweep_of_a_seed_is_one_ensemble_and_the_eps_runs_train_alone():
    cfg, plan = _plan()
    assert len(plan) == len(cfg.seeds) * 5  # 3 alphas + eps 0.1 and 0.4 (eps 0.2 at alpha 1 is in the sweep)
    keys = {label: ensemble_key(spec, 8, 1, data_key=str(spec.seed)) for label, spec in plan.items()}
    sweep = {keys[lr.label(a, 0.2, 0)] for a in cfg.sweep_alphas()}
    assert len(sweep) == 1  # alpha differs only in output_scale and lr: one stack (equal to the plain trainer:
    # tests/train/test_ensemble.py::test_committee_members_with_fixed_readout_and_centring_equal_the_plain_trainer)
    assert keys[lr.label(1.0, 0.1, 0)] not in sweep and keys[lr.label(1.0, 0.4, 0)] not in sweep
    assert keys[lr.label(1.0, 0.1, 0)] != keys[lr.label(1.0, 0.4, 0)]


def _pilot_rows():
    per_alpha = {a: {**row, "kr_fraction": row["final_test"] / lr.PILOT_KR_TEST, "distance_final": 0.2 / a,
                     "max_test_ratio": row["max_test"] / lr.PILOT_INIT_TEST}
                 for a, row in lr.PILOT.items()}
    per_eps = {0.1: {"delay": 2000.0, "cka_init": 0.020}, 0.2: {"delay": 1100.0, "cka_init": 0.023},
               0.4: {"delay": 600.0, "cka_init": 0.030}}
    return per_alpha, per_eps


def test_summary_numbers_on_the_spec_pilot_pass_grok1_and_catch_a_missing_delay():
    per_alpha, per_eps = _pilot_rows()
    alphas = sorted(per_alpha)
    n = lr.summary_numbers(alphas, per_alpha, [0.1, 0.2, 0.4], per_eps)
    assert n["delay_min_increase"] == 600 and n["delay_ratio"] == 20
    assert n["final_test_min_increase"] == pytest.approx(0.044)
    assert n["kr_fraction"] == pytest.approx(0.058 / 0.406)
    assert n["distance_max_increase"] < 0 and n["distance_slope"] == pytest.approx(-1.0)
    assert n["eps_delay_max_increase"] == -500 and n["eps_cka_min_increase"] == pytest.approx(0.003)
    per_alpha[4.0] = {**per_alpha[4.0], "delay": None}  # alpha = 4 never generalized
    n = lr.summary_numbers(alphas, per_alpha, [0.1, 0.2, 0.4], per_eps)
    assert n["delay_min_increase"] is None and n["delay_ratio"] is None


def test_config_rejects_what_the_analysis_cannot_read():
    with pytest.raises(ConfigError, match="committee machine"):
        lr.EXPERIMENT.resolve("quick", {"model": {"centered": False}})
    with pytest.raises(ConfigError, match="data.n_test"):
        lr.EXPERIMENT.resolve("quick", {"data": {"n_test": 0}})
    with pytest.raises(ConfigError, match="share their `every`"):
        lr.EXPERIMENT.resolve("quick", {"probes": [
            {"name": "loss"}, {"name": "weight_moments", "every": 100}, {"name": "fresh_loss", "every": 50},
            {"name": "ntk_heldout"}, {"name": "ntk_change"}, {"name": "ntk_regression"}]})
    with pytest.raises(ConfigError, match="probes: lazy-rich needs the probe"):
        lr.EXPERIMENT.resolve("quick", {"probes": [{"name": "loss"}]})
    with pytest.raises(ConfigError, match="alphas"):
        lr.EXPERIMENT.resolve("quick", {"alphas": [1.0, 1.0]})


@pytest.fixture()
def store(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        yield st


def _assert_passes(outcome, alphas):
    assert outcome.passed, outcome.verdict["reason"]
    per = outcome.summary["per_alpha"]
    delays = [per[f"{a:g}"]["delay"] for a in alphas]
    assert all(b > a for a, b in zip(delays, delays[1:])) and delays[-1] >= 4 * delays[0]
    assert outcome.summary["decomposition_max_error"] <= 0.05
    assert -1.5 < outcome.summary["distance_slope"] < -0.5
    assert all(math.isfinite(per[f"{a:g}"]["kr_test"]) for a in alphas)


def test_quick_preset_with_one_seed_passes(store):
    """The quick preset reduced to seed 0 (~15 s)."""
    outcome = run_experiment("lazy-rich", store=store, preset="quick", overrides={"seeds": [0]})
    _assert_passes(outcome, [0.5, 1.0, 2.0])


@pytest.mark.slow
def test_quick_preset_passes(store):
    outcome = run_experiment("lazy-rich", store=store, preset="quick")
    _assert_passes(outcome, [0.5, 1.0, 2.0])
