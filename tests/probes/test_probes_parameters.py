"""The `parameters` probe and its helpers: layout shared with the Hessian's eigenvectors, the
round trip theta <-> named tensors, f(x; theta) and J(x; theta) v against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes import run_probe
from phenolab.probes.parameters import (
    directional_derivative,
    flat_parameters,
    function_values,
    parameter_layout,
    unflatten_parameters,
)
from phenolab.tasks.base import Task
from phenolab.train import generator

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(width: int = 7, dtype: torch.dtype = torch.float64) -> nn.Module:
    spec = MLPSpec(width=width, activation="tanh", parametrization="ntk", output_bias=False)
    return build_model(spec, 1, 1, generator(3, "model"), dtype=dtype)


def _task(n: int = 9) -> Task:
    x = torch.linspace(-1, 1, n, dtype=torch.float64)[:, None]
    return Task.from_batch(x, torch.sin(3 * x))


def test_theta_is_named_parameters_in_order_and_round_trips():
    model = _mlp()
    theta = flat_parameters(model)
    expected = np.concatenate([p.detach().numpy().ravel() for _, p in model.named_parameters()])
    np.testing.assert_array_equal(theta, expected)
    assert theta.dtype == np.float64 and theta.shape == (7 + 7 + 7,)  # w, b, a (no output bias)
    assert parameter_layout(model) == [("layers.0.weight", (7, 1)), ("layers.0.bias", (7,)),
                                       ("layers.1.weight", (1, 7))]
    back = unflatten_parameters(model, theta)
    for name, p in model.named_parameters():
        torch.testing.assert_close(back[name], p.detach())
        assert back[name].dtype == p.dtype
    with pytest.raises(ValueError, match="21 trainable parameters"):
        unflatten_parameters(model, theta[:-1])


def test_probe_returns_theta_and_its_norm_and_matches_the_hessian_eigenvector_layout():
    model, task = _mlp(), _task()
    out = run_probe("parameters", model, task)
    np.testing.assert_array_equal(out["theta"], flat_parameters(model))
    assert out["norm"] == pytest.approx(np.linalg.norm(out["theta"]))
    v = run_probe("hessian", model, task, vectors=True)["top_eigenvector"]
    assert v.shape == out["theta"].shape


def test_frozen_parameters_are_left_out_and_a_users_module_works():
    model = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    model[0].bias.requires_grad_(False)
    theta = flat_parameters(model)
    assert theta.shape == (4 + 4 + 1,)
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    with torch.no_grad():
        np.testing.assert_allclose(function_values(model, theta, x), model(x).numpy(), rtol=1e-12)


def test_function_values_at_another_theta_leave_the_model_unchanged():
    model = _mlp()
    other = _mlp()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)[:, None]
    before = flat_parameters(model)
    got = function_values(model, flat_parameters(other), x)
    with torch.no_grad():
        np.testing.assert_allclose(got, other(x).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(flat_parameters(model), before)


def test_directional_derivative_matches_central_differences():
    model = _mlp(width=5)
    theta = flat_parameters(model)
    v = np.random.default_rng(0).standard_normal(theta.shape)
    x = np.linspace(-1, 1, 13)[:, None]
    eps = 1e-5
    fd = (function_values(model, theta + eps * v, x) - function_values(model, theta - eps * v, x)) / (2 * eps)
    jv = directional_derivative(model, theta, v, x)
    assert jv.shape == (13, 1)
    np.testing.assert_allclose(jv, fd, rtol=1e-7, atol=1e-9)
    assert model.training  # eval mode only for the call


def test_loss_and_gradient_against_finite_differences_and_assign_round_trip():
    from phenolab.probes.parameters import assign_parameters, half_squared_error, loss_and_gradient

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    x, y = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 1, dtype=torch.float64)
    theta = flat_parameters(model)
    loss, grad = loss_and_gradient(model, x, y)
    assert loss == pytest.approx(half_squared_error(model(x), y).item(), rel=1e-14)
    h = 1e-6
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = h
        fd = (loss_and_gradient(model, x, y, theta + step)[0]
              - loss_and_gradient(model, x, y, theta - step)[0]) / (2 * h)
        assert grad[i] == pytest.approx(fd, abs=1e-8)
    assert np.array_equal(flat_parameters(model), theta)  # evaluating elsewhere leaves the model alone
    assign_parameters(model, theta + 1.0)
    assert np.allclose(flat_parameters(model), theta + 1.0)
