"""The numpy GD trainers of the theory experiments (`phenolab.train.numpy_gd`)."""

import math

import numpy as np
import pytest

from phenolab.train.numpy_gd import (
    coefficient_product_gd,
    linear_gd_limit,
    product_losses,
    tanh_two_layer_gd,
    tanh_two_layer_loss_grad,
)


def _tanh_problem(m=4, n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = np.tanh(x @ np.array([1.0, -0.5]))
    return 0.3 * rng.normal(size=(m, 2)), 0.3 * rng.normal(size=m), x, y


def test_tanh_gd_is_plain_gd_on_the_half_mse():
    w, a, x, y = _tanh_problem()
    fit = tanh_two_layer_gd(w, a, x, y, lr=0.1, steps=30, snapshot_steps=[0, 10, 30])
    ww, aa = w, a
    for t in range(31):
        loss, gw, ga = tanh_two_layer_loss_grad(ww, aa, x, y)
        assert fit.loss[t] == loss and fit.grad_norm[t] == math.sqrt(float((gw * gw).sum() + ga @ ga))
        if t in (0, 10, 30):
            assert np.array_equal(fit.snapshots[t][0], ww) and np.array_equal(fit.snapshots[t][1], aa)
        if t < 30:
            ww, aa = ww - 0.1 * gw, aa - 0.1 * ga
    assert np.array_equal(fit.w, ww) and np.array_equal(fit.a, aa)
    e = np.tanh(x @ w.T) @ a - y
    assert fit.loss[0] == pytest.approx(0.5 * np.mean(e ** 2))  # (1/2n) sum e^2
    again = tanh_two_layer_gd(w, a, x, y, lr=0.1, steps=10)
    assert np.array_equal(again.w, fit.snapshots[10][0])  # deterministic: a rerun passes the same points


def test_plateaus_are_local_minima_of_the_gradient_norm_after_the_escape():
    w, a, x, y = _tanh_problem()
    fit = tanh_two_layer_gd(w, a, x, y, lr=0.1, steps=5)
    fit.loss = np.array([1.0, 0.95, 0.8, 0.7, 0.6, 0.5, 0.4])
    fit.grad_norm = np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.2, 0.5])
    assert fit.plateaus(0.9) == (2, [3, 5])  # t = 1 is a minimum, but before the escape
    assert fit.plateaus(0.9, count=1) == (2, [3])
    assert fit.plateaus(0.1) == (-1, [])


def test_coefficient_product_losses_and_linear_limit():
    rng = np.random.default_rng(1)
    phi = np.concatenate([np.ones((2, 3, 1)), rng.uniform(-1, 1, size=(2, 3, 2))], -1)
    c_star = np.array([1.0, 1.0, 0.0])
    y = phi @ c_star
    weight = np.array([[1 / 3] * 3, [0.5, 0.5, 0.0]])
    u0 = 1e-2 * rng.normal(size=(2, 1, 3))
    fit = coefficient_product_gd(u0, phi, y, weight, lr=0.5, steps=4000, record_steps=[0, 2000, 4000])
    assert fit.steps.tolist() == [0, 2000, 4000] and fit.loss.shape == (2, 3)
    assert np.array_equal(fit.loss[:, 0], product_losses(u0, phi, y, weight))
    assert np.all(fit.loss[:, 1:] < 1e-25) and np.all(fit.loss[:, 0] > 0.1)
    limit = linear_gd_limit(u0[:, 0], phi, y, [3, 2])
    np.testing.assert_allclose(fit.u[:, 0], limit, atol=1e-8)  # depth 1: GD reaches the nearest solution
    np.testing.assert_allclose(limit[0], c_star, atol=1e-12)  # three points: unique
    with pytest.raises(ValueError, match="record_steps"):
        coefficient_product_gd(u0, phi, y, weight, lr=0.5, steps=3, record_steps=[5])
