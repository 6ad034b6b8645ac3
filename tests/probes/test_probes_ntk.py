"""Empirical NTK (`phenolab.probes.ntk`): every method against a dense Jacobian computed with
`torch.autograd.functional.jacobian` (no torch.func), alignments against hand computations,
and the ``ntk`` / ``ntk_change`` probes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes import ntk
from phenolab.probes.ntk import (
    empirical_ntk,
    kernel_target_alignment,
    label_gradient_alignment,
    ntk_eig,
    ntk_method,
    relative_kernel_distance,
)
from phenolab.probes.registry import needs_reference, run_probe
from phenolab.tasks.base import Task

F64 = torch.float64


def _x(n: int, d: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _mlp(depth=1, parametrization="standard", bias=True, k=2, width=6, d=3, scale=0.7, activation="tanh", dtype=F64):
    spec = MLPSpec(width=width, depth=depth, activation=activation, parametrization=parametrization,
                     bias=bias, output_scale=scale)
    return build_model(spec, d, k, torch.Generator().manual_seed(3), dtype=dtype)


def _seq(*layers: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*layers).double()


def dense_jacobian(model: nn.Module, x: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
    """(n, k, P) Jacobian of model(x) by torch.autograd.functional.jacobian, the parameters swapped
    into the modules by hand for the call."""
    named = [(n, p.detach().clone()) for n, p in model.named_parameters() if names is None or n in names]
    keys = [n for n, _ in named]

    def fn(*tensors):
        saved = []
        for name, tensor in zip(keys, tensors):
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            saved.append((module, attr, module._parameters[attr]))
            module._parameters[attr] = tensor
        try:
            return model(x).reshape(len(x), -1)
        finally:
            for module, attr, param in saved:
                module._parameters[attr] = param

    jac = torch.autograd.functional.jacobian(fn, tuple(t for _, t in named))
    return torch.cat([j.reshape(len(x), j.shape[1], -1) for j in jac], dim=2)


def dense_ntk(model, x1, x2=None, outputs="trace", names=None) -> torch.Tensor:
    j1 = dense_jacobian(model, x1, names)
    j2 = j1 if x2 is None else dense_jacobian(model, x2, names)
    full = torch.einsum("iap,jbp->iajb", j1, j2)
    return {"trace": torch.einsum("iaja->ij", full), "full": full, "sum": full.sum((1, 3))}[outputs]


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-10) -> None:
    assert got.shape == want.shape
    assert float((got - want).norm() / want.norm()) < rtol


# ----------------------------------------------------------------------------- methods
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("parametrization", ["standard", "ntk", "mean_field"])
@pytest.mark.parametrize("bias", [True, False])
def test_structured_methods_equal_dense_jacobian_on_mlp(depth, parametrization, bias):
    model = _mlp(depth, parametrization, bias)
    x1, x2 = _x(4), _x(3, seed=2)
    methods = ["auto", "layerwise"] + (["two_layer"] if depth == 1 else [])
    for outputs in ("trace", "full", "sum"):
        want_square, want_cross = dense_ntk(model, x1, outputs=outputs), dense_ntk(model, x1, x2, outputs)
        for method in methods:
            _close(empirical_ntk(model, x1, method=method, outputs=outputs), want_square)
            _close(empirical_ntk(model, x1, x2, method=method, outputs=outputs), want_cross)


@pytest.mark.parametrize(("depth", "parametrization", "bias"), [(1, "mean_field", False), (2, "ntk", True)])
def test_generic_methods_equal_dense_jacobian_on_mlp(depth, parametrization, bias):
    model = _mlp(depth, parametrization, bias)
    x1, x2 = _x(4), _x(3, seed=2)
    want_full, want_cross = dense_ntk(model, x1, outputs="full"), dense_ntk(model, x1, x2, "full")
    for method in ("jacobian", "ntvp"):
        _close(empirical_ntk(model, x1, method=method, outputs="full"), want_full)
        _close(empirical_ntk(model, x1, x2, method=method, outputs="full"), want_cross)
        _close(empirical_ntk(model, x1, x2, method=method), torch.einsum("iaja->ij", want_cross))
        _close(empirical_ntk(model, x1, x2, method=method, outputs="sum"), want_cross.sum((1, 3)))


def test_user_sequential_deep_with_output_activation():
    model = _seq(nn.Linear(3, 5), nn.ReLU(inplace=True), nn.Sequential(nn.Linear(5, 4), nn.Tanh()), nn.Dropout(0.5),
                 nn.Linear(4, 2), nn.Sigmoid())
    x = _x(5)
    assert ntk_method(model, 5) == "layerwise"
    model.eval()
    want = dense_ntk(model, x, outputs="full")
    model.train()
    for method in ("auto", "jacobian", "ntvp", "layerwise"):
        _close(empirical_ntk(model, x, method=method, outputs="full"), want)
        assert model.training and model[3].training  # flags restored
    with pytest.raises(ValueError, match="two-layer"):
        empirical_ntk(model, x, method="two_layer")


def test_user_sequential_two_layer_multi_output():
    model = _seq(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 3))
    x1, x2 = _x(4), _x(5, seed=2)
    assert ntk_method(model, 4) == "two_layer"
    for outputs in ("trace", "full", "sum"):
        want = dense_ntk(model, x1, x2, outputs)
        for method in ("two_layer", "layerwise", "jacobian", "ntvp"):
            _close(empirical_ntk(model, x1, x2, method=method, outputs=outputs), want)


class _Residual(nn.Module):
    """A model no structured method reads: x -> v . tanh(W x) + x . u."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inner = nn.Linear(3, 6, dtype=F64)
        self.v = nn.Parameter(torch.randn(6, dtype=F64))
        self.u = nn.Parameter(torch.randn(3, dtype=F64))

    def forward(self, x):
        return torch.tanh(self.inner(x)) @ self.v + x @ self.u


def test_user_module_uses_generic_methods():
    model = _Residual()
    x = _x(5)
    assert ntk_method(model, 5) == "jacobian"
    assert ntk_method(model, 10**7) == "ntvp"
    want = dense_ntk(model, x)
    assert want.shape == (5, 5)
    for method in ("auto", "jacobian", "ntvp"):
        _close(empirical_ntk(model, x, method=method), want)
    for method in ("layerwise", "two_layer"):
        with pytest.raises(ValueError, match="cannot read|two-layer"):
            empirical_ntk(model, x, method=method)


def test_all_methods_agree_on_a_wider_two_layer_net():
    model = _mlp(1, "ntk", True, k=1, width=64, activation="relu", scale=1.0)
    x = _x(20)
    kernels = {m: empirical_ntk(model, x, method=m) for m in ("two_layer", "layerwise", "jacobian", "ntvp")}
    for kernel in kernels.values():
        _close(kernel, kernels["jacobian"], rtol=1e-5)
    assert kernels["two_layer"].shape == (20, 20)


def test_ntvp_in_many_chunks(monkeypatch):
    monkeypatch.setattr(ntk, "NTVP_BUDGET", 1)
    model = _mlp(2, "ntk")
    x = _x(4)
    _close(empirical_ntk(model, x, method="ntvp", outputs="full"), dense_ntk(model, x, outputs="full"))


def test_parameter_subset():
    names = ["layers.0.weight", "layers.1.bias", "layers.2.weight"]
    model = _mlp(2, "mean_field")
    x = _x(4)
    for outputs in ("trace", "full"):
        want = dense_ntk(model, x, outputs=outputs, names=names)
        for method in ("jacobian", "ntvp", "layerwise"):
            _close(empirical_ntk(model, x, method=method, outputs=outputs, params=names), want)
    two = _mlp(1, "ntk")
    for subset in (["layers.0.weight"], ["layers.0.bias", "layers.1.weight"], ["layers.1.bias"]):
        _close(empirical_ntk(two, x, method="two_layer", params=subset), dense_ntk(two, x, names=subset))
    with pytest.raises(KeyError, match="not parameters"):
        empirical_ntk(model, x, params=["nope"])


def test_frozen_parameters_are_left_out_by_default():
    model = _mlp(2, "ntk")
    model.layers[0].weight.requires_grad_(False)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    _close(empirical_ntk(model, _x(4)), dense_ntk(model, _x(4), names=names))


def test_point_evaluates_at_other_parameters():
    model = _mlp(2, "ntk")
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x = _x(4)
    before = empirical_ntk(model, x)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.ones_like(p))
    after = dense_ntk(model, x)
    for method in ("jacobian", "ntvp", "layerwise"):
        _close(empirical_ntk(model, x, method=method, point=start), before)
        _close(empirical_ntk(model, x, method=method), after)
    _close(empirical_ntk(_mlp(1), x, method="two_layer", point=_mlp(1, scale=0.7).state_dict()), dense_ntk(_mlp(1), x))
    with pytest.raises(KeyError, match="lacks"):
        empirical_ntk(model, x, point={"bogus": torch.zeros(1)})


def test_float32_model_and_numpy_inputs():
    model = _mlp(2, "ntk", dtype=torch.float32)
    x = _x(6).numpy()
    kernel = empirical_ntk(model, x)
    assert kernel.dtype == torch.float32
    model64 = _mlp(2, "ntk")
    _close(kernel.double(), dense_ntk(model64, torch.as_tensor(x)), rtol=1e-5)


def test_bad_arguments():
    model = _mlp()
    with pytest.raises(ValueError, match="method must be"):
        empirical_ntk(model, _x(3), method="magic")
    with pytest.raises(ValueError, match="outputs must be"):
        empirical_ntk(model, _x(3), outputs="diag")
    with pytest.raises(ValueError, match="two-layer"):
        empirical_ntk(_mlp(2), _x(3), method="two_layer")


# ----------------------------------------------------------------------------- measurements
K3 = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])


def test_kernel_target_alignment_by_hand():
    y = np.array([1.0, -1.0, 2.0])
    # K y = (1, 1, 3), y^T K y = 6, ||K||_F = 4, ||y y^T||_F = ||y||^2 = 6
    assert kernel_target_alignment(K3, y) == pytest.approx(6 / (4 * 6))
    # H K H = [[10, -2, -8], [-2, 4, -2], [-8, -2, 10]] / 9, H y = (1, -5, 4) / 3:
    # y^T H K H y = 306 / 81, ||H K H||_F = sqrt(360) / 9, ||H y||^2 = 42 / 9
    assert kernel_target_alignment(K3, y, centered=True) == pytest.approx(306 / (42 * math.sqrt(360)))
    assert kernel_target_alignment(torch.as_tensor(K3), torch.as_tensor(y[:, None])) == pytest.approx(0.25)


def test_kernel_target_alignment_integer_labels_are_one_hot():
    labels = np.array([0, 0, 1])
    onehot = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert kernel_target_alignment(K3, torch.as_tensor(labels)) == pytest.approx(kernel_target_alignment(K3, onehot))
    assert kernel_target_alignment(onehot @ onehot.T, onehot) == pytest.approx(1.0)


def test_label_gradient_alignment_by_hand():
    # L = [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], mean(K) = 10/9, mean(L) = 1/9:
    # <K - mean, L - mean> = 396/81 = ||K - mean||^2, ||L - mean||^2 = 720/81
    assert label_gradient_alignment(K3, np.array([0, 0, 1])) == pytest.approx(math.sqrt(396 / 720))


def test_label_gradient_alignment_spec_unit_checks():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=200)
    same = np.where(labels[:, None] == labels[None, :], 1.0, -1.0)
    assert label_gradient_alignment(same, labels) == pytest.approx(1.0)
    kernel = rng.standard_normal((200, 200))
    base = label_gradient_alignment(kernel, labels)
    assert label_gradient_alignment(3.0 * kernel + 2.0, labels) == pytest.approx(base)
    onehot = np.eye(4)[labels]
    assert label_gradient_alignment(onehot @ onehot.T, onehot) > 0.99
    features = rng.standard_normal((200, 5))
    assert abs(label_gradient_alignment(features @ features.T, labels)) < 0.05


def test_relative_kernel_distance():
    assert relative_kernel_distance(K3, K3.copy()) == 0.0
    assert relative_kernel_distance(2 * np.eye(3), np.eye(3)) == pytest.approx(1.0)
    assert relative_kernel_distance(2 * K3, K3, form="cosine") == pytest.approx(0.0, abs=1e-12)
    assert relative_kernel_distance(np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]]), form="cosine") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        relative_kernel_distance(K3, np.eye(2))


def test_ntk_eig_descending_and_reconstructs():
    values, vectors = ntk_eig(torch.as_tensor(K3))
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.T, K3, atol=1e-12)
    np.testing.assert_allclose(values, [2 + math.sqrt(2), 2.0, 2 - math.sqrt(2)])
    top, top_vectors = ntk_eig(K3, k=2)
    assert top.shape == (2,) and top_vectors.shape == (3, 2)
    full = np.zeros((3, 1, 3, 1))
    full[:, 0, :, 0] = K3
    np.testing.assert_allclose(ntk_eig(full)[0], values)


# ----------------------------------------------------------------------------- probes
def _task(n=12, k=1, classification=False) -> Task:
    x = _x(n)
    if classification:
        return Task(x_train=x, y_train=torch.arange(n) % 3, kind="classification", info={"n_classes": 3})
    return Task(x_train=x, y_train=torch.sin(x[:, :k]))


def test_ntk_probe_keys_and_values():
    model, task = _mlp(2, "ntk", k=1), _task()
    out = run_probe("ntk", model, task, top=3)
    kernel = dense_ntk(model, task.x_train)
    assert set(out) == {"trace", "alignment", "eig_0", "eig_1", "eig_2", "distance", "eigenvalues"}
    assert out["trace"] == pytest.approx(float(torch.trace(kernel)))
    expected = np.sort(np.linalg.eigvalsh(kernel.numpy()))[::-1]
    np.testing.assert_allclose(out["eigenvalues"], expected, rtol=1e-10, atol=1e-12)
    assert out["eig_0"] == pytest.approx(expected[0]) and out["eig_2"] == pytest.approx(expected[2])
    assert out["alignment"] == pytest.approx(kernel_target_alignment(kernel, task.y_train, centered=True))
    assert math.isnan(out["distance"])
    same = run_probe("ntk", model, task, reference_kernel=kernel.numpy(), method="jacobian")
    assert same["distance"] == pytest.approx(0.0, abs=1e-12)


def test_ntk_probe_subsamples_points_and_pads_eigenvalues():
    out = run_probe("ntk", _mlp(1, k=2), _task(n=30, k=2), points=4, top=6)
    assert out["eigenvalues"].shape == (4,)
    assert math.isnan(out["eig_5"]) and not math.isnan(out["eig_3"])


def test_ntk_probe_label_gradient_alignment_on_classification():
    model, task = _mlp(1, k=3), _task(classification=True)
    out = run_probe("ntk", model, task, lga=True)
    summed = dense_ntk(model, task.x_train, outputs="sum")
    assert out["lga"] == pytest.approx(label_gradient_alignment(summed, task.y_train))
    with pytest.raises(ValueError, match="classification"):
        run_probe("ntk", _mlp(1, k=1), _task(), lga=True)


def test_ntk_change_zero_at_reference_positive_after_a_step():
    assert needs_reference("ntk_change") and not needs_reference("ntk")
    model, task = _mlp(2, "ntk", k=1), _task()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    assert run_probe("ntk_change", model, task, reference=reference)["distance"] == 0.0
    with torch.no_grad():
        model.layers[1].weight.add_(0.1 * torch.randn(model.layers[1].weight.shape, dtype=F64))
    moved = run_probe("ntk_change", model, task, reference=reference)["distance"]
    want = relative_kernel_distance(dense_ntk(model, task.x_train), empirical_ntk(model, task.x_train, point=reference))
    assert moved > 0 and moved == pytest.approx(want)
    with pytest.raises(ValueError, match="reference"):
        run_probe("ntk_change", model, task)


def test_sequential_with_a_tied_layer_uses_the_generic_path():
    torch.manual_seed(0)
    shared = nn.Linear(4, 4, dtype=F64)
    model = nn.Sequential(nn.Linear(3, 4, dtype=F64), nn.Tanh(), shared, nn.Tanh(), shared, nn.Linear(4, 1, dtype=F64))
    x = _x(5)
    assert ntk_method(model, 5) == "jacobian"
    _close(empirical_ntk(model, x), dense_ntk(model, x))


def test_ntk_probe_returns_the_kernel_matrix_on_request():
    from phenolab.probes import run_probe
    from phenolab.tasks.base import Task

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    out = run_probe("ntk", model, Task(x_train=x, y_train=x[:, :1]), matrix=True)
    jac = torch.autograd.functional.jacobian(
        lambda *ps: torch.func.functional_call(model, dict(zip([n for n, _ in model.named_parameters()], ps)), (x,)),
        tuple(p.detach() for p in model.parameters()))
    flat = torch.cat([j.reshape(5, -1) for j in jac], dim=1)
    assert np.allclose(out["kernel"], (flat @ flat.T).numpy(), rtol=1e-10)
    assert np.array_equal(out["inputs"], x.numpy())
