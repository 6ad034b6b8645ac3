"""Held-out NTK probes: the uncentred alignment on test points and kernel regression with the NTK."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import RunSpec, validate
from phenolab.probes.ntk import empirical_ntk
from phenolab.probes.ntk_heldout import kernel_coefficients, kernel_regression
from phenolab.probes.registry import run_probe
from phenolab.tasks import make_task
from phenolab.tasks.base import Task
from phenolab.train.engines import build_run as build


def _committee(n_test: int = 60) -> tuple[Task, nn.Module]:
    spec = validate(RunSpec, {
        "model": {"width": 12, "activation": "quadratic", "activation_param": 0.3, "bias": False,
                  "fixed_readout": 1.0, "centered": True, "output_scale": 1 / 12, "init": {"std": 1.0}},
        "data": {"kind": "quadratic_teacher", "input_dim": 5, "n_train": 30, "n_test": n_test, "seed": 0},
        "train": {"dtype": "float64"}})
    return build(spec)


def test_heldout_alignment_is_the_uncentred_cka_on_the_first_test_points():
    task, model = _committee()
    out = run_probe("ntk_heldout", model, task, points=40)
    K = empirical_ntk(model, task.x_test[:40]).numpy()
    y = task.y_test[:40, 0].numpy()
    assert out["alignment"] == pytest.approx(y @ K @ y / (np.linalg.norm(K) * (y @ y)), rel=1e-10)
    H = np.eye(40) - 1 / 40
    Kc, Yc = H @ K @ H, H @ np.outer(y, y) @ H
    assert out["alignment_centered"] == pytest.approx(np.sum(Kc * Yc) / (np.linalg.norm(Kc) * np.linalg.norm(Yc)))
    assert out["trace"] == pytest.approx(np.trace(K) / 40)
    with pytest.raises(ValueError, match="test set"):
        run_probe("ntk_heldout", model, Task(x_train=task.x_train, y_train=task.y_train))


def test_ntk_regression_of_a_centred_net_is_ridgeless_kernel_regression_with_its_ntk():
    task, model = _committee()
    out = run_probe("ntk_regression", model, task)
    K = empirical_ntk(model, task.x_train).numpy()
    Kt = empirical_ntk(model, task.x_test, task.x_train).numpy()
    pred = Kt @ np.linalg.solve(K, task.y_train.numpy())
    assert out["test"] == pytest.approx(float(np.mean((pred - task.y_test.numpy()) ** 2)), rel=1e-8)
    assert out["train"] < 1e-12


def test_ntk_regression_of_a_linear_model_recovers_a_linear_teacher_through_a_singular_kernel():
    """f = w . x has the constant NTK x . x' of rank d < n: the least-squares branch; the linearized
    limit started from f itself fits the linear target exactly."""
    spec = validate(RunSpec, {"data": {"kind": "linear_teacher", "input_dim": 4, "n_train": 20, "n_test": 30,
                                       "seed": 0}})
    task = make_task(spec.data, 0, dtype=torch.float64)
    model = nn.Linear(4, 1, bias=False).double()
    out = run_probe("ntk_regression", model, task)
    assert out["test"] < 1e-18 and out["train"] < 1e-18


def test_kernel_coefficients_ridge_and_validation():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    K, r = A @ A.T + np.eye(6), rng.normal(size=(6, 1))
    np.testing.assert_allclose(kernel_coefficients(K, r, ridge=0.5), np.linalg.solve(K + 0.5 * np.eye(6), r))
    np.testing.assert_allclose(kernel_regression(K, K[:2], r), r[:2])
    with pytest.raises(ValueError, match="ridge"):
        kernel_coefficients(K, r, ridge=-1.0)
