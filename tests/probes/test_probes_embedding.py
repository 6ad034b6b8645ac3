"""Saddle branches of critical embeddings (docs/specs/embedding-principle.md) against dense Hessians.

Setup of the protocol: d = 2, n = 30, x ~ N(0, I) (numpy default_rng(0), which reproduces the
pilot's loss 3.1345e-2), y = tanh(1.5 x1 + 0.3 x2) - tanh(-0.4 x1 + 1.2 x2), a width-1
tanh net without biases at its best critical point (BFGS restarts, then Newton steps on the dense
Hessian), loss L = (1/2n) sum e^2 = mse / 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.models.embedding import null_embedding, split_neuron
from phenolab.probes import run_probe
from phenolab.probes.embedding import hessian_inertia, null_curvature, split_curvature
from phenolab.probes.hessian import hessian_matrix, mse
from phenolab.probes.parameters import assign_parameters, flat_parameters, half_squared_error, loss_and_gradient
from phenolab.tasks.base import Task

DELTAS = (0.5, 0.25, -0.5, 1.5)
SPEC_SADDLES = {0.5: -0.1445, 0.25: -0.0867, -0.5: -0.00214, 1.5: -0.00214}  # the protocol's predicted min lambda_split


def hessian(model, x, y, loss=half_squared_error):
    return hessian_matrix(model, loss, x, y, dtype=torch.float64)


@pytest.fixture(scope="module")
def data():
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(30, 2)))
    y = (torch.tanh(1.5 * x[:, 0] + 0.3 * x[:, 1]) - torch.tanh(-0.4 * x[:, 0] + 1.2 * x[:, 1]))[:, None]
    return x, y


@pytest.fixture(scope="module")
def narrow(data):
    """The best of 8 BFGS runs (gtol 1e-13) of the width-1 net, polished by 3 Newton steps."""
    x, y = data
    model = build_model(MLPSpec(width=1, activation="tanh", bias=False), 2, 1,
                        torch.Generator().manual_seed(0), torch.float64)
    rng = np.random.default_rng(1)
    runs = [minimize(lambda t: loss_and_gradient(model, x, y, t), rng.normal(size=3), jac=True, method="BFGS",
                     options={"gtol": 1e-13, "maxiter": 500}) for _ in range(8)]
    assign_parameters(model, min(runs, key=lambda r: r.fun).x)
    for _ in range(3):
        _, grad = loss_and_gradient(model, x, y)
        assign_parameters(model, flat_parameters(model) - np.linalg.solve(hessian(model, x, y).numpy(), grad))
    return model


def test_narrow_point_is_a_local_minimum(narrow, data):
    x, y = data
    loss, grad = loss_and_gradient(narrow, x, y)
    eig = torch.linalg.eigvalsh(hessian(narrow, x, y)).numpy()
    assert np.linalg.norm(grad) < 1e-10
    assert loss == pytest.approx(3.1345e-2, rel=1e-4)  # the pilot's value
    assert np.all(eig > 0)
    np.testing.assert_allclose(eig, [0.0113, 0.873, 3.26], rtol=5e-3)
    assert hessian_inertia(eig) == (0, 0, 3)


@pytest.mark.parametrize("delta", DELTAS)
def test_split_point_is_a_critical_saddle_as_predicted(narrow, data, delta):
    x, y = data
    wide = split_neuron(narrow, 0, delta)
    fresh = torch.from_numpy(np.random.default_rng(2).normal(size=(200, 2)))
    with torch.no_grad():
        assert torch.allclose(wide(fresh), narrow(fresh), rtol=0, atol=1e-12)
    loss, grad = loss_and_gradient(wide, x, y)
    assert loss == pytest.approx(loss_and_gradient(narrow, x, y)[0], rel=1e-12)
    assert np.linalg.norm(grad) < 1e-10

    eig = torch.linalg.eigvalsh(hessian(wide, x, y)).numpy()
    pred = split_curvature(narrow, x, y, 0, delta)
    assert eig[0] < 0
    assert eig[0] == pytest.approx(pred["lambda_min"], rel=0.10)
    assert eig[0] <= pred["lambda_min"] + 1e-12  # a Rayleigh quotient bounds the smallest eigenvalue
    if delta == 0.5:  # the split direction is then orthogonal to the narrow ones: exact
        assert eig[0] == pytest.approx(pred["lambda_min"], rel=1e-9)
    assert pred["lambda_min"] == pytest.approx(SPEC_SADDLES[delta], rel=1e-2)
    np.testing.assert_allclose(pred["eigenvalues"], [-0.289, 0.0071], rtol=1e-2)  # indefinite: saddles for all delta

    narrow_inertia = hessian_inertia(torch.linalg.eigvalsh(hessian(narrow, x, y)))
    wide_inertia = hessian_inertia(eig)
    assert wide_inertia == (1, 1, 4)
    assert all(w >= n for w, n in zip(wide_inertia, narrow_inertia))


def test_null_embedding_adds_plus_minus_g(narrow, data):
    x, y = data
    wide = null_embedding(narrow)
    loss, grad = loss_and_gradient(wide, x, y)
    assert loss == pytest.approx(loss_and_gradient(narrow, x, y)[0], rel=1e-12)
    assert np.linalg.norm(grad) < 1e-10
    eig = torch.linalg.eigvalsh(hessian(wide, x, y)).numpy()
    old = torch.linalg.eigvalsh(hessian(narrow, x, y)).numpy()
    pred = null_curvature(narrow, x, y)
    assert pred["g_norm"] == pytest.approx(0.0128, rel=1e-2)
    np.testing.assert_allclose(pred["eigenvalues"], [-pred["g_norm"], 0.0, pred["g_norm"]], atol=1e-15)
    new = np.sort(np.concatenate([old, pred["eigenvalues"]]))
    np.testing.assert_allclose(eig, new, rtol=0.05, atol=1e-12)
    assert hessian_inertia(eig) == (1, 1, 4)


def _random_net(parametrization="standard", k=2, m=3, seed=0):
    spec = MLPSpec(width=m, activation="tanh", bias=True, parametrization=parametrization)
    return build_model(spec, 2, k, torch.Generator().manual_seed(seed), torch.float64)


@pytest.mark.parametrize("loss", ["half", "mse"])
def test_split_rayleigh_quotient_with_bias_and_three_outputs(loss):
    """u^T H u / |u|^2 = lambda_split(delta, v) along the split direction u, at any split point
    (the first-order output change vanishes there, criticality is not needed); k = 3 outputs
    tell the conventions apart: (1/2n) sum ||e||^2 = (3/2) mse."""
    x = torch.randn(25, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.sin(x @ torch.tensor([[1.0, -0.5, 0.2], [0.3, 2.0, -1.0]], dtype=torch.float64))
    net, j, delta, m = _random_net(k=3), 1, 0.3, 3
    pred = split_curvature(net, x, y, j, delta, loss=loss)
    v = torch.from_numpy(pred["direction"])
    wide = split_neuron(net, j, delta)
    u = {name: torch.zeros_like(p) for name, p in wide.named_parameters()}
    for row, coef in ((j, 1.0 - delta), (m, -delta)):  # standard parametrization: raw = effective
        u["layers.0.weight"][row] = coef * v[:2]
        u["layers.0.bias"][row] = coef * v[2]
    u = torch.cat([t.reshape(-1) for t in u.values()])
    h = hessian(wide, x, y, half_squared_error if loss == "half" else mse)
    assert float(u @ h @ u / (u @ u)) == pytest.approx(pred["lambda_min"], rel=1e-10)
    assert pred["factor"] == pytest.approx(0.21 / 0.58)
    half = split_curvature(net, x, y, j, delta)
    assert pred["lambda_min"] == pytest.approx(half["lambda_min"] * (1.0 if loss == "half" else 2 / 3))


def test_null_block_with_bias_and_two_outputs():
    """The new neuron's Hessian block is exactly [[0, G], [G^T, 0]] (sigma(0) = 0), at any point."""
    x = torch.randn(25, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = torch.cos(x)
    net = _random_net(parametrization="ntk", seed=1)
    wide = null_embedding(net)
    h = hessian(wide, x, y, mse)
    layout = {name: p.numel() for name, p in wide.named_parameters()}  # w0 (4, 2), b0 (4), w1 (2, 4), b1 (2)
    offsets = np.cumsum([0, *layout.values()])
    m, k = 3, 2
    idx_w = [offsets[0] + 2 * m, offsets[0] + 2 * m + 1, offsets[1] + m]  # w_new (2), b_new
    idx_a = [offsets[2] + c * (m + 1) + m for c in range(k)]  # layers.1.weight[c, m]
    idx = idx_a + idx_w
    block = h[np.ix_(idx, idx)].numpy()
    # raw -> effective: NTK multiplies w by 1/sqrt(d) and a by 1/sqrt(m + 1)
    scale = np.diag([1 / np.sqrt(m + 1)] * k + [1 / np.sqrt(2)] * 2 + [1.0])
    pred = null_curvature(net, x, y, loss="mse")
    expected = np.zeros((5, 5))
    expected[:k, k:], expected[k:, :k] = pred["g"], pred["g"].T
    np.testing.assert_allclose(block, scale @ expected @ scale, atol=1e-13)
    s = np.linalg.svd(pred["g"], compute_uv=False)
    np.testing.assert_allclose(pred["eigenvalues"], [-s[0], -s[1], 0.0, s[1], s[0]], atol=1e-14)
    assert pred["g_norm"] == pytest.approx(s[0])


def test_null_curvature_needs_sigma_zero_and_inertia_tolerance():
    net = build_model(MLPSpec(width=2, activation="sigmoid"), 2, 1, torch.Generator().manual_seed(0), torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma\\(0\\) = 0"):
        null_curvature(net, x, x[:, :1])
    assert hessian_inertia(np.array([-1.0, 1e-12, -1e-12, 2.0])) == (1, 2, 1)
    assert hessian_inertia(np.array([-1.0, 1e-12, 2.0]), tol=1e-13) == (1, 0, 2)
    assert hessian_inertia(np.zeros(3)) == (0, 3, 0)


def test_generic_module_needs_activation(narrow, data):
    x, y = data
    seq = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.Tanh(), torch.nn.Linear(1, 1, bias=False))
    seq = seq.double()
    w, _, a = narrow.neurons()
    with torch.no_grad():
        seq[0].weight.copy_(w)
        seq[2].weight.copy_(a.T)
    with pytest.raises(ValueError, match="activation"):
        split_curvature(seq, x, y, 0, 0.5)
    ours, theirs = split_curvature(narrow, x, y, 0, 0.5), split_curvature(seq, x, y, 0, 0.5, activation="tanh")
    assert theirs["lambda_min"] == pytest.approx(ours["lambda_min"], rel=1e-12)


def test_saddle_branches_probe(narrow, data):
    x, y = data
    out = run_probe("saddle_branches", narrow, Task(x_train=x, y_train=y))
    assert out["split_eigenvalues"].shape == (1, 2)
    assert out["split_min"] == pytest.approx(split_curvature(narrow, x, y, 0, 0.5)["lambda_min"])
    assert out["null_g_norm"] == pytest.approx(null_curvature(narrow, x, y)["g_norm"])
