"""Infinite-width NTK / NNGP (`phenolab.probes.ntk_analytic`, docs/specs/ntk-convergence.md): the
pilot value, Monte-Carlo estimates of the Gaussian expectations, and convergence of wide networks' empirical NTK."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes.ntk import empirical_ntk, relative_kernel_distance
from phenolab.probes.ntk_analytic import analytic_ntk

F64 = torch.float64


def _circle(points: int = 16) -> torch.Tensor:
    """`points` inputs on the unit circle (the NTK-1a data)."""
    angles = torch.arange(points, dtype=F64) * (2 * math.pi / points)
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def _slope(widths: list[int], errors: list[float]) -> float:
    return float(np.polyfit(np.log(widths), np.log(errors), 1)[0])


def test_jacot_pilot_value():
    # docs/specs/ntk-convergence.md: L = 4 weight layers (3 hidden), beta = 0.1, x0 = (1, 0): Theta(x0, x0) = 0.2825
    theta, sigma = analytic_ntk(np.array([[1.0, 0.0]]), depth=3, weight_var=1.0, bias_var=0.01)
    assert theta[0, 0] == pytest.approx(0.2825, abs=5e-5)
    assert sigma[0, 0] == pytest.approx(0.08125, abs=5e-6)  # Sigma halves per ReLU layer, plus beta^2


def test_shapes_symmetry_and_cross_kernel():
    x1, x2 = _circle(5), _circle(7)
    theta, sigma = analytic_ntk(x1, depth=2, activation="erf", bias_var=0.5)
    np.testing.assert_allclose(theta, theta.T)
    cross, cross_sigma = analytic_ntk(x1, x2, depth=2, activation="erf", bias_var=0.5)
    both, both_sigma = analytic_ntk(torch.cat([x1, x2]), depth=2, activation="erf", bias_var=0.5)
    np.testing.assert_allclose(cross, both[:5, 5:], rtol=1e-12)
    np.testing.assert_allclose(cross_sigma, both_sigma[:5, 5:], rtol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        analytic_ntk(x1, activation="tanh")
    with pytest.raises(ValueError, match="depth"):
        analytic_ntk(x1, depth=0)


def _monte_carlo_depth_1(x: np.ndarray, phi, dphi, weight_var: float, bias_var: float, samples: int = 400_000):
    """(NTK, NNGP) of one hidden layer by sampling its units: u = sigma_w w . x / sqrt(d) + sigma_b b,
    Sigma_2 = sigma_w^2 E[phi(u) phi(u')] + sigma_b^2, Theta_2 = Sigma_2 + sigma_w^2 E[phi'(u) phi'(u')] Sigma_1."""
    rng = np.random.default_rng(0)
    d = x.shape[1]
    w = rng.standard_normal((samples, d))
    b = rng.standard_normal(samples)
    u = math.sqrt(weight_var) * (x @ w.T) / math.sqrt(d) + math.sqrt(bias_var) * b
    sigma_1 = weight_var * (x @ x.T) / d + bias_var
    sigma_2 = weight_var * phi(u) @ phi(u).T / samples + bias_var
    return sigma_2 + weight_var * (dphi(u) @ dphi(u).T / samples) * sigma_1, sigma_2


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_depth_1_kernels_equal_monte_carlo(activation):
    from scipy.special import erf

    x = np.random.default_rng(1).standard_normal((6, 3))
    phi, dphi = {
        "relu": (lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(float)),
        "erf": (erf, lambda u: 2 / math.sqrt(math.pi) * np.exp(-(u**2))),
    }[activation]
    theta_mc, sigma_mc = _monte_carlo_depth_1(x, phi, dphi, weight_var=2.0, bias_var=0.5)
    theta, sigma = analytic_ntk(x, depth=1, activation=activation, weight_var=2.0, bias_var=0.5)
    np.testing.assert_allclose(sigma, sigma_mc, rtol=0.02)
    np.testing.assert_allclose(theta, theta_mc, rtol=0.02)


def _mean_error(make, x, reference, width: int, seeds: int) -> float:
    return float(np.mean([relative_kernel_distance(empirical_ntk(make(width, s), x), reference) for s in range(seeds)]))


@pytest.mark.parametrize(
    ("depth", "bias", "widths", "largest_error"),
    [(1, True, [256, 1024, 4096], 0.08), (2, False, [64, 256, 1024], 0.15)],
)
def test_wide_relu_mlp_converges_to_analytic_ntk(depth, bias, widths, largest_error):
    """phenolab's MLP(parametrization="ntk"), default init: weight_var = 1, bias_var = 1 (biases)
    or 0 (none). NTK-1a: error < 0.08 at width 4096, slope of log error on log width in
    [-0.7, -0.3]; the deeper net stops at width 1024 to keep the test fast (error ~0.08 there)."""
    x = _circle()
    reference, _ = analytic_ntk(x, depth=depth, activation="relu", weight_var=1.0, bias_var=1.0 if bias else 0.0)

    def make(width, seed):
        spec = MLPSpec(width=width, depth=depth, activation="relu", parametrization="ntk", bias=bias)
        return build_model(spec, 2, 1, torch.Generator().manual_seed(seed), dtype=F64)

    errors = [_mean_error(make, x, reference, width, seeds=6) for width in widths]
    assert errors[-1] < largest_error, errors
    assert -0.7 <= _slope(widths, errors) <= -0.3, errors


class _NTKLinear(nn.Module):
    """z = W h / sqrt(fan_in) + b with raw W, b ~ N(0, 1) (NTK parametrization)."""

    def __init__(self, fan_in: int, fan_out: int, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in, generator=generator, dtype=F64))
        self.bias = nn.Parameter(torch.randn(fan_out, generator=generator, dtype=F64))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight.T / math.sqrt(self.weight.shape[1]) + self.bias


class _ErfNet(nn.Module):
    def __init__(self, width: int, generator: torch.Generator):
        super().__init__()
        self.hidden = _NTKLinear(2, width, generator)
        self.out = _NTKLinear(width, 1, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.erf(self.hidden(x)))


def test_wide_erf_user_module_converges_to_analytic_ntk():
    """A user's erf net (no phenolab model; generic Jacobian path): weight_var = bias_var = 1."""
    x = _circle()
    reference, _ = analytic_ntk(x, depth=1, activation="erf", weight_var=1.0, bias_var=1.0)
    widths = [256, 1024, 4096]
    errors = [_mean_error(lambda w, s: _ErfNet(w, torch.Generator().manual_seed(s)), x, reference, w, 8)
              for w in widths]
    assert errors[-1] < 0.08
    assert -0.7 <= _slope(widths, errors) <= -0.3, errors
