"""Lanczos, power iteration, Hutchinson and SLQ against dense eigendecompositions.

Operators: explicit symmetric matrices with chosen spectra, and the dense Hessian of a small
tanh network (84 parameters) from ``torch.autograd.functional.hessian``; the reference
spectra come from ``numpy.linalg.eigh``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from phenolab.probes.lanczos import (
    gaussian_density,
    hutchinson_trace,
    lanczos,
    power_iteration,
    slq_density,
    slq_nodes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _matrix(eigenvalues, seed: int = 0) -> np.ndarray:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    n = len(eigenvalues)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (q * np.asarray(eigenvalues, dtype=np.float64)) @ q.T


def _op(a: np.ndarray):
    a_t = torch.as_tensor(a)
    return lambda v: a_t @ v


@pytest.fixture(scope="module")
def hessian() -> np.ndarray:
    """Dense MSE Hessian of a 3-10-4 tanh net (84 parameters) on 40 samples, float64."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 10), nn.Tanh(), nn.Linear(10, 4)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(3, 4, generator=g, dtype=torch.float64))
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta):
        parts = [c.reshape(s) for c, s in zip(torch.split(theta, [s.numel() for s in shapes]), shapes)]
        return ((functional_call(model, dict(zip(names, parts)), (x,)) - y) ** 2).mean()

    return torch.autograd.functional.hessian(loss, flat).numpy()


def _hutchinson_sd(h: np.ndarray) -> float:
    """Standard deviation of v^T H v for Rademacher v: sqrt(2 (|H|_F^2 - sum_i H_ii^2))."""
    return float(np.sqrt(2 * (np.sum(h**2) - np.sum(np.diag(h) ** 2))))


def test_lanczos_top_k_of_a_hessian(hessian):
    n = hessian.shape[0]
    exact_values, exact_vectors = np.linalg.eigh(hessian)
    values, vectors, info = lanczos(_op(hessian), n, 5)
    np.testing.assert_allclose(values.numpy(), exact_values[::-1][:5], rtol=1e-8)
    assert info["converged"] and info["hvps"] == info["iterations"] < n
    assert np.all(info["residuals"] <= 1e-8 * info["norm_estimate"])
    v = vectors.numpy()
    np.testing.assert_allclose(v.T @ v, np.eye(5), atol=1e-10)
    residual = hessian @ v - v * values.numpy()
    assert np.abs(residual).max() <= 1e-7 * np.abs(exact_values).max()
    assert abs(v[:, 0] @ exact_vectors[:, -1]) == pytest.approx(1.0, abs=1e-10)


def test_lanczos_is_largest_algebraic_power_iteration_largest_magnitude():
    a = _matrix([-10.0, 4.0, 2.0, *np.linspace(-1, 1, 37)])
    values, _, _ = lanczos(_op(a), 40, 2)
    np.testing.assert_allclose(values.numpy(), [4.0, 2.0], rtol=1e-10)
    value, vector, info = power_iteration(_op(a), 40, iters=500, tol=1e-10)
    assert value == pytest.approx(-10.0, rel=1e-6) and info["converged"]


def test_power_iteration_stops_at_its_tolerance():
    a = _matrix([10.0, 5.0, *np.linspace(0, 1, 38)])
    value, vector, info = power_iteration(_op(a), 40, tol=1e-3)
    assert info["converged"] and info["hvps"] < 20
    assert value == pytest.approx(10.0, rel=1e-3)
    assert float(vector.norm()) == pytest.approx(1.0)


def test_lanczos_restarts_after_an_invariant_subspace_and_finds_multiplicity():
    # rank 3 with a double eigenvalue: the first Krylov space (5, 3, 0) is invariant after 3 steps
    a = _matrix([5.0, 5.0, 3.0, *[0.0] * 27])
    values, vectors, info = lanczos(_op(a), 30, 3)
    np.testing.assert_allclose(values.numpy(), [5.0, 5.0, 3.0], rtol=1e-10)
    assert info["restarts"] >= 1 and info["converged"] and info["hvps"] <= 8
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=1e-10)


def test_lanczos_finds_a_multiplicity_in_a_full_rank_operator():
    a = _matrix([5.0, 5.0, 3.0, *np.linspace(-1, 1, 27)])
    values, _, _ = lanczos(_op(a), 30, 3, iters=30, tol=0.0)
    np.testing.assert_allclose(values.numpy(), [5.0, 5.0, 3.0], rtol=1e-10)


def test_lanczos_reports_non_convergence_and_validates():
    a = _matrix(np.linspace(0, 1, 50))
    _, _, info = lanczos(_op(a), 50, 1, iters=3, tol=1e-12)
    assert not info["converged"] and info["hvps"] == 3
    with pytest.raises(ValueError, match="k must"):
        lanczos(_op(a), 50, 51)
    with pytest.raises(ValueError, match="iters"):
        lanczos(_op(a), 50, 4, iters=2)
    with pytest.raises(ValueError, match="reorth"):
        lanczos(_op(a), 50, 1, reorth="partial")


def test_lanczos_without_reorthogonalization_still_finds_the_top(hessian):
    values, _, _ = lanczos(_op(hessian), hessian.shape[0], 1, reorth="none", tol=1e-10)
    assert float(values[0]) == pytest.approx(np.linalg.eigvalsh(hessian)[-1], rel=1e-8)


def test_lanczos_is_deterministic_in_seed(hessian):
    n = hessian.shape[0]
    first = lanczos(_op(hessian), n, 2, iters=6, tol=0.0, seed=3)
    again = lanczos(_op(hessian), n, 2, iters=6, tol=0.0, seed=3)
    other = lanczos(_op(hessian), n, 2, iters=6, tol=0.0, seed=4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_hutchinson_trace_within_three_standard_errors(hessian):
    n, samples = hessian.shape[0], 2000
    estimate, stderr = hutchinson_trace(_op(hessian), n, samples=samples, seed=0)
    assert abs(estimate - np.trace(hessian)) <= 3 * stderr
    assert stderr == pytest.approx(_hutchinson_sd(hessian) / np.sqrt(samples), rel=0.15)


def test_slq_density_integrates_to_one_and_has_the_right_mean(hessian):
    n, probes = hessian.shape[0], 20
    grid, density = slq_density(_op(hessian), n, probes=probes, steps=30, seed=0)
    dgrid = np.gradient(grid)
    assert np.all(density >= 0) and float(np.sum(density * dgrid)) == pytest.approx(1.0, abs=1e-12)
    mean = float(np.sum(grid * density * dgrid))
    # Rademacher probes: the density's mean is (1/probes) sum v^T H v / n, unbiased for tr H / n
    assert abs(mean - np.trace(hessian) / n) <= 3 * _hutchinson_sd(hessian) / n / np.sqrt(probes)


def test_slq_density_puts_its_mass_on_the_spectrum(hessian):
    n = hessian.shape[0]
    exact = np.linalg.eigvalsh(hessian)
    nodes, weights = slq_nodes(_op(hessian), n, probes=20, steps=30, seed=0)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    sigma = 0.01 * (exact.max() - exact.min())
    grid, density = gaussian_density(nodes, weights, sigma=sigma)
    _, smoothed = gaussian_density(exact, np.full(n, 1.0 / n), grid=grid, sigma=sigma)
    dgrid = np.gradient(grid)
    near = np.min(np.abs(grid[:, None] - exact[None, :]), axis=1) <= 4 * sigma
    assert float(np.sum((density * dgrid)[near])) >= 0.999
    cdf_distance = np.max(np.abs(np.cumsum(density * dgrid) - np.cumsum(smoothed * dgrid)))
    assert cdf_distance <= 0.1
    assert nodes.max() == pytest.approx(exact.max(), rel=1e-8) and nodes.min() == pytest.approx(exact.min(), rel=1e-6)


def test_slq_nodes_are_eigenvalues_when_the_krylov_space_is_exhausted():
    eigenvalues = np.array([3.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, -1.0])
    a = _matrix(eigenvalues)
    nodes, weights = slq_nodes(_op(a), 8, probes=3, steps=8, seed=1)
    heavy = nodes[weights > 1e-12]
    assert np.min(np.abs(heavy[:, None] - eigenvalues[None, :]), axis=1).max() <= 1e-10
    assert len(nodes) <= 3 * 5  # each run stops at its invariant subspace: 5 distinct eigenvalues


def test_gaussian_density_with_given_grid_and_bad_input():
    grid = np.linspace(-1, 2, 3001)
    _, density = gaussian_density(np.array([0.0, 1.0]), np.array([0.25, 0.75]), grid=grid, sigma=0.05)
    assert float(np.sum(density * np.gradient(grid))) == pytest.approx(1.0, abs=1e-12)
    assert density[np.searchsorted(grid, 1.0)] / density[np.searchsorted(grid, 0.0)] == pytest.approx(3.0, rel=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_density(np.array([0.0]), np.array([1.0]), sigma=-1.0)
    with pytest.raises(ValueError, match="grid"):
        gaussian_density(np.array([0.0]), np.array([1.0]), grid=np.array([1.0, 0.0]))
