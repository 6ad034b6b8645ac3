"""Model rank (arXiv:2211.11623, 2307.08921, 2406.18035): the Jacobian against autograd's dense
one, numerical rank and gap on constructed matrices, and the closed-form ranks of docs/specs/recovery.md
and matrix-completion.md (two-layer and deep tanh nets, matrix factorization, fully connected vs conv)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.models.conv import Conv1dSumPool, InputSubset
from phenolab.models.matrix_factorization import MatrixFactorization, all_positions
from phenolab.probes.parameters import flat_parameters, unflatten_parameters
from phenolab.probes.rank import jacobian, linear_stability, model_rank, numerical_rank
from phenolab.probes.registry import run_probe
from phenolab.tasks.base import Task

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gauss(n: int, d: int, seed: int = 100) -> torch.Tensor:
    return torch.randn(n, d, generator=_gen(seed), dtype=torch.float64)


def _net(d: int, widths: list[int], layers: list[torch.Tensor] | None = None) -> nn.Module:
    """tanh MLP without biases, f = a^T tanh(W_L ... tanh(W_1 x)); ``layers``: its weights,
    zero-padded into the top-left corner of each (out, in) weight matrix (None: the random init)."""
    model = build_model(MLPSpec(widths=widths, bias=False, activation="tanh"), d, 1, _gen(0), dtype=torch.float64)
    if layers is not None:
        with torch.no_grad():
            for layer, w in zip(model.layers, layers):
                layer.weight.zero_()
                layer.weight[: w.shape[0], : w.shape[1]] = w
    return model


def _narrow(d: int, widths: list[int], narrow: list[int], seed: int) -> nn.Module:
    """A random net of hidden widths `narrow` embedded in one of `widths` by zero padding."""
    g = _gen(seed)
    sizes = [d, *narrow, 1]
    return _net(d, widths, [torch.randn(o, i, generator=g, dtype=torch.float64) for i, o in zip(sizes, sizes[1:])])


def _dense_reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d f(x) / d theta by torch.autograd.functional.jacobian of theta -> f(x; theta) (float64)."""
    theta = torch.as_tensor(flat_parameters(model))
    buffers = {name: b.to(torch.float64) if b.is_floating_point() else b for name, b in model.named_buffers()}
    frozen = {name: p.detach().to(torch.float64) for name, p in model.named_parameters() if not p.requires_grad}
    shapes = [(name, p.shape) for name, p in model.named_parameters() if p.requires_grad]

    def f(t: torch.Tensor) -> torch.Tensor:  # float64 throughout (unflatten_parameters casts back)
        chunks = t.split([shape.numel() for _, shape in shapes])
        params = {name: c.reshape(shape) for (name, shape), c in zip(shapes, chunks)}
        return functional_call(model, {**buffers, **frozen, **params}, (x.to(torch.float64),)).reshape(-1)

    return torch.autograd.functional.jacobian(f, theta)


# ----------------------------------------------------------------------------- numerical_rank
def test_numerical_rank_of_a_constructed_matrix_and_of_singular_values():
    g = _gen(1)
    u = torch.linalg.qr(torch.randn(9, 9, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(7, 7, generator=g, dtype=torch.float64))[0]
    s = torch.tensor([3.0, 2.0, 1.0, 1e-3, 1e-12, 0.0, 0.0], dtype=torch.float64)
    a = u[:, :7] @ torch.diag(s) @ v.T
    result = numerical_rank(a)
    assert result.rank == 4 and result.tol == pytest.approx(3e-8)
    assert result.sigma_max == pytest.approx(3.0)
    assert result.gap == pytest.approx(1e9, rel=1e-2) and result.log10_gap == pytest.approx(9.0, abs=1e-2)
    np.testing.assert_allclose(result.singular_values[:4], s[:4].numpy(), rtol=1e-12)
    assert numerical_rank(a.T).rank == 4  # wide
    exact = numerical_rank(s.flip(0))  # singular values in any order
    assert exact.rank == 4 and exact.gap == pytest.approx(1e9, rel=1e-12)
    assert numerical_rank(s, rtol=1e-2).rank == 3 and numerical_rank(s, rtol=1e-2).gap == pytest.approx(1e3)
    assert numerical_rank(s, rtol=1e-13).rank == 5 and numerical_rank(s, rtol=1e-13).gap == math.inf


def test_numerical_rank_tall_matrix_full_rank_and_zero():
    g = _gen(2)
    tall = torch.randn(60, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 5, generator=g, dtype=torch.float64)
    result = numerical_rank(tall.numpy())  # numpy in, QR path (60 > 2 * 5)
    assert result.rank == 2 and result.log10_gap > 12
    np.testing.assert_allclose(result.singular_values, np.linalg.svd(tall.numpy(), compute_uv=False), atol=1e-12)
    full = numerical_rank(torch.eye(3))
    assert full.rank == 3 and full.gap == math.inf
    zero = numerical_rank(torch.zeros(4, 3))
    assert zero.rank == 0 and zero.gap == math.inf and zero.sigma_max == 0.0


@pytest.mark.parametrize("rtol", [0.0, -1e-8, 1.0, 2.0])
def test_bad_rtol_names_the_field_and_range(rtol):
    with pytest.raises(ValueError, match=r"rtol: must lie in \(0, 1\)"):
        numerical_rank(torch.eye(2), rtol=rtol)
    with pytest.raises(ValueError, match="rtol"):
        model_rank(_net(2, [2]), _gauss(5, 2), rtol=rtol)
    with pytest.raises(ValueError, match="rtol"):
        run_probe("model_rank", _net(2, [2]), Task.from_batch(_gauss(5, 2), _gauss(5, 1)), rtol=rtol)


def test_numerical_rank_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        numerical_rank(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=">= 0"):
        numerical_rank(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="2-D"):
        numerical_rank(torch.zeros(2, 2, 2))


# ----------------------------------------------------------------------------- jacobian
class UserModule(nn.Module):
    """A user's module: a frozen parameter, a buffer, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        g = _gen(5)
        self.w = nn.Parameter(torch.randn(3, 2, generator=g))
        self.frozen = nn.Parameter(torch.randn(2, generator=g), requires_grad=False)
        self.v = nn.Parameter(torch.randn(2, 3, generator=g))
        self.register_buffer("shift", torch.randn(3, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x * self.frozen + self.shift[:2]) @ self.w.T @ self.v.T + self.shift[2]


class ItemModule(UserModule):
    """Control flow on a value (``.item()``): vmap cannot batch it, the forward-mode path runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if out.abs().max().item() < 1e6 else 0 * out


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch's forward-AD setup
@pytest.mark.parametrize("make", [
    lambda: build_model(MLPSpec(widths=[4, 3], activation="tanh"), 2, 2, _gen(3), dtype=torch.float64),
    UserModule,
    ItemModule,
])
def test_jacobian_equals_autograd_dense_jacobian(make):
    model = make()
    x = _gauss(7, 2)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    model.train()
    jac = jacobian(model, x)
    ref = _dense_reference(model, x)
    assert jac.dtype == torch.float64 and jac.shape == ref.shape == (7 * 2, flat_parameters(model).size)
    torch.testing.assert_close(jac, ref, atol=1e-12, rtol=1e-10)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def test_jacobian_at_other_parameters():
    model, doubled = _net(3, [4]), _net(3, [4])
    with torch.no_grad():
        for p, q in zip(doubled.parameters(), model.parameters()):
            p.copy_(2 * q)
    theta = flat_parameters(model) * 2
    x = _gauss(5, 3)
    torch.testing.assert_close(jacobian(model, x, params=theta), jacobian(doubled, x))
    torch.testing.assert_close(jacobian(model, x, params=unflatten_parameters(model, theta)), jacobian(doubled, x))
    with pytest.raises(ValueError, match="not parameters"):
        jacobian(model, x, params={"nope": torch.zeros(1)})


def test_jacobian_of_matrix_factorization():
    mf = MatrixFactorization(2, 3, generator=_gen(0))
    a, b = (f.detach() for f in mf.factors)
    eye2, eye3 = torch.eye(2, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    expected = torch.cat([torch.kron(eye2, b.T.contiguous()), torch.kron(a, eye3)], 1)
    torch.testing.assert_close(jacobian(mf, all_positions(2, 3)), expected)  # dW_ij/dA_ik = B_kj, dW_ij/dB_kj = A_ik



# ----------------------------------------------------------------------------- closed-form ranks
@pytest.mark.parametrize("width", [4, 8])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_two_layer_tanh_rank_is_k_times_d_plus_1_free_in_width(k, width):
    result = model_rank(_narrow(3, [width], [k], seed=10 + k), _gauss(400, 3))
    assert result.rank == k * 4
    assert result.log10_gap > 5


def test_aligned_neurons_do_not_lower_the_rank():
    g = _gen(7)
    w_star = torch.randn(1, 3, generator=g, dtype=torch.float64)
    a = torch.randn(1, 8, generator=g, dtype=torch.float64)  # sum a_k = a*, all w_k = w*
    model = _net(3, [8], [w_star.expand(8, 3), a])
    assert model_rank(model, _gauss(400, 3)).rank == 4


@pytest.mark.parametrize(("narrow", "expected"), [([1, 1], 5), ([2, 1], 9), ([2, 2], 12), ([3, 2], 17)])
def test_deep_narrow_target_in_wide_net_has_rank_of_the_narrow_net(narrow, expected):
    k1, k2 = narrow
    assert expected == k1 * 3 + k2 * k1 + k2
    result = model_rank(_narrow(3, [6, 6], narrow, seed=20 + k1 + k2), _gauss(400, 3))
    assert result.rank == expected and result.log10_gap > 5


def test_generic_wide_deep_net_has_full_rank():
    result = model_rank(_net(3, [6, 6]), _gauss(400, 3))
    assert result.rank == 60 and result.gap == math.inf


@pytest.mark.parametrize("k", [1, 2])
def test_linear_stability_steps_at_n_equal_rank(k):
    model = _narrow(3, [8], [k], seed=30 + k)
    population = _gauss(400, 3)
    r = 4 * k
    for n, expected in ((r - 1, False), (r, True), (r + 1, True)):
        for draw in range(5):
            out = linear_stability(model, population, _gauss(n, 3, seed=1000 * n + draw))
            assert out["rank"] == r and out["stable"] is expected, (n, draw, out["rank_train"])
            assert out["rank_train"] == min(n, r)


def _factorization(d1: int, d2: int, r: int) -> MatrixFactorization:
    """W = A B = U V^T of rank r: A = [U, 0], B = [V^T; 0] (full width)."""
    mf = MatrixFactorization(d1, d2, generator=_gen(0))
    g = _gen(40 + r)
    with torch.no_grad():
        for factor in mf.factors:
            factor.zero_()
        mf.factors[0][:, :r] = torch.randn(d1, r, generator=g, dtype=torch.float64)
        mf.factors[1][:r, :] = torch.randn(r, d2, generator=g, dtype=torch.float64)
    assert torch.linalg.matrix_rank(mf.matrix().detach()) == r
    return mf


@pytest.mark.parametrize(("d1", "d2", "r", "expected"), [
    (4, 4, 1, 7), (4, 4, 2, 12), (4, 4, 3, 15), (3, 5, 1, 7), (3, 5, 2, 12),
])
def test_matrix_factorization_rank_is_r_times_d1_plus_d2_minus_r(d1, d2, r, expected):
    assert expected == r * (d1 + d2 - r)
    result = model_rank(_factorization(d1, d2, r), all_positions(d1, d2))
    assert result.rank == expected and result.log10_gap > 8


def test_connection_is_costly_width_and_sharing_are_free():
    """OPT-3 (docs/specs/recovery.md), d = 6, s = 2: fully connected neuron 7, s-connected neuron 3, conv 3, fully
    connected net of the conv target (one neuron per shift) (d - s + 1)(d + 1) = 35."""
    d, s = 6, 2
    g = _gen(50)
    w_star = torch.randn(1, s, generator=g, dtype=torch.float64)
    a = torch.ones(1, 1, dtype=torch.float64)
    x = _gauss(300, d)
    full = _net(d, [1], [w_star, a])
    wired = InputSubset(_net(s, [1], [w_star, a]), range(s))
    torch.testing.assert_close(full(x), wired(x))
    conv = Conv1dSumPool(d, s)
    with torch.no_grad():
        conv.weight.copy_(w_star)
        conv.readout.fill_(1.0)
    shifts = torch.zeros(d - s + 1, d, dtype=torch.float64)
    for p in range(d - s + 1):
        shifts[p, p : p + s] = w_star[0]
    fc_conv = _net(d, [d - s + 1], [shifts, torch.ones(1, d - s + 1, dtype=torch.float64)])
    torch.testing.assert_close(conv(x), fc_conv(x))
    ranks = [model_rank(model, x).rank for model in (full, wired, conv, fc_conv)]
    assert ranks == [d + 1, s + 1, s + 1, (d - s + 1) * (d + 1)] == [7, 3, 3, 35]


# ----------------------------------------------------------------------------- the probe
def test_probe_on_an_mlp_gaussian_population_and_training_rank():
    model = _narrow(3, [4], [1], seed=60)
    x_train = _gauss(6, 3, seed=61)
    out = run_probe("model_rank", model, Task.from_batch(x_train, model(x_train).detach()), points=300, seed=3)
    assert set(out) == {"rank", "log10_gap", "sigma_max", "singular_values", "rank_train", "linearly_stable"}
    expected = model_rank(model, torch.randn(300, 3, generator=_gen(3), dtype=torch.float64))
    assert out["rank"] == 4.0 and out["rank_train"] == 4.0 and out["linearly_stable"] == 1.0
    assert out["log10_gap"] == expected.log10_gap and out["sigma_max"] == expected.sigma_max
    np.testing.assert_array_equal(out["singular_values"], expected.singular_values)
    few = run_probe("model_rank", model, Task.from_batch(x_train[:3], x_train[:3, :1]), points=300)
    assert few["rank_train"] == 3.0 and few["linearly_stable"] == 0.0


def test_probe_on_a_user_sequential_uses_the_task_sampler_or_test_inputs():
    torch.manual_seed(0)
    user = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))  # float32, 13 parameters
    x = torch.randn(20, 2, generator=_gen(70))
    sample = lambda n, g: torch.rand(n, 2, generator=g)  # noqa: E731
    sampled = run_probe("model_rank", user, Task.from_batch(x, x[:, :1], sample=sample), points=200, train=False)
    assert set(sampled) == {"rank", "log10_gap", "sigma_max", "singular_values"}
    expected = model_rank(user, sample(200, _gen(0)))
    assert sampled["rank"] == expected.rank == 13 and sampled["sigma_max"] == expected.sigma_max
    x_test = torch.randn(250, 2, generator=_gen(71))
    tested = run_probe("model_rank", user, Task.from_batch(x, x[:, :1], x_test=x_test), points=200)
    assert tested["sigma_max"] == model_rank(user, x_test[:200]).sigma_max
    assert tested["rank"] == 13 and tested["rank_train"] == 13 and tested["linearly_stable"] == 1.0
    with pytest.raises(ValueError, match="lower points"):
        run_probe("model_rank", user, Task.from_batch(x, x[:, :1]), points=2**30)
