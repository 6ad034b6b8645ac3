"""Hessian-vector products and the `hessian` probe against the dense Hessian.

The reference is ``torch.autograd.functional.hessian`` of the loss as a function of one flat
parameter vector (flattened here, in ``named_parameters`` order), with the losses written
here; it shares no code with the probe.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes import run_probe
from phenolab.probes.hessian import SPECTRUM_MAX_PARAMS, cross_entropy, hessian_matrix, hvp_operator, mse
from phenolab.tasks.base import Task


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: threads only add synchronization (10x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mse_ref(out, y):
    return ((out - y) ** 2).mean()


def _ce_ref(out, y):
    return -torch.log_softmax(out, dim=1)[torch.arange(len(y)), y].mean()


def _tanh_net(d: int = 3, m: int = 10, k: int = 4, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, m), nn.Tanh(), nn.Linear(m, k))  # 84 parameters for 3-10-4


def _phenolab_mlp() -> nn.Module:
    spec = MLPSpec(width=8, depth=2, activation="tanh")  # 2-8-8-1: 24 + 72 + 9 = 105 parameters
    return build_model(spec, 2, 1, _gen(3))


def _regression(d: int = 3, k: int = 4, n: int = 40, seed: int = 1) -> Task:
    g = _gen(seed)
    x = torch.randn(n, d, generator=g)
    return Task(x_train=x, y_train=torch.sin(x @ torch.randn(d, k, generator=g)))


def _classification(d: int = 4, k: int = 3, n: int = 60, seed: int = 2) -> Task:
    g = _gen(seed)
    x = torch.randn(n, d, generator=g)
    return Task(x_train=x, y_train=torch.randint(0, k, (n,), generator=g), kind="classification", info={"n_classes": k})


def dense_hessian(model: nn.Module, loss, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """H of theta -> loss(model(x; theta), y) over the trainable parameters, float64."""
    model = copy.deepcopy(model).double().eval()
    named = [(name, p.detach()) for name, p in model.named_parameters() if p.requires_grad]
    shapes, sizes = [p.shape for _, p in named], [p.numel() for _, p in named]
    flat = torch.cat([p.reshape(-1) for _, p in named])
    x = x.double()
    y = y.double() if y.is_floating_point() else y

    def loss_of_flat(theta):
        parts = [c.reshape(s) for c, s in zip(torch.split(theta, sizes), shapes)]
        return loss(functional_call(model, {name: t for (name, _), t in zip(named, parts)}, (x,)), y)

    return torch.autograd.functional.hessian(loss_of_flat, flat).numpy()


CASES = {
    "tanh-sequential-mse": (_tanh_net, _regression, _mse_ref, mse),
    "phenolab-mlp-mse": (_phenolab_mlp, lambda: _regression(d=2, k=1), _mse_ref, mse),
    "sequential-cross-entropy": (lambda: _tanh_net(4, 8, 3), _classification, _ce_ref, cross_entropy),
}


@pytest.mark.parametrize("case", CASES)
def test_hvp_equals_dense_hessian_times_v(case):
    make_model, make_task, ref_loss, loss = CASES[case]
    model, task = make_model(), make_task()
    h = dense_hessian(model, ref_loss, task.x_train, task.y_train)
    matvec, n = hvp_operator(model, loss, task.x_train, task.y_train, dtype=torch.float64)
    assert n == h.shape[0] and 50 <= n <= 200
    for seed in range(3):
        v = torch.randn(n, generator=_gen(seed), dtype=torch.float64)
        hv = matvec(v)
        assert hv.dtype == torch.float64 and hv.shape == (n,)
        np.testing.assert_allclose(hv.numpy(), h @ v.numpy(), rtol=0, atol=1e-10 * max(1.0, np.abs(h).max()))


def test_hvp_in_model_dtype_without_dtype_option():
    model, task = _tanh_net(), _regression()
    matvec, n = hvp_operator(model, mse, task.x_train.double(), task.y_train)
    v = torch.randn(n, generator=_gen(0), dtype=torch.float64)
    hv = matvec(v)
    assert hv.dtype == torch.float32
    h = dense_hessian(model, _mse_ref, task.x_train, task.y_train)
    np.testing.assert_allclose(hv.double().numpy(), h @ v.numpy(), atol=1e-5)


def test_user_loss_built_on_f_mse_loss():
    model, task = _tanh_net(), _regression()
    matvec, n = hvp_operator(model, F.mse_loss, task.x_train, task.y_train, dtype=torch.float64)
    h = dense_hessian(model, _mse_ref, task.x_train, task.y_train)
    v = torch.randn(n, generator=_gen(0), dtype=torch.float64)
    np.testing.assert_allclose(matvec(v).numpy(), h @ v.numpy(), atol=1e-10)
    out = run_probe("hessian", model, task, loss=F.mse_loss)
    assert out["top_0"] == pytest.approx(np.linalg.eigvalsh(h)[-1], rel=1e-8)


def test_frozen_parameters_and_params_option():
    model, task = _tanh_net(), _regression()
    model[0].bias.requires_grad_(False)
    point = {"2.weight": torch.randn(4, 10, generator=_gen(5))}
    matvec, n = hvp_operator(model, mse, task.x_train, task.y_train, dtype=torch.float64, params=point)
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shifted[2].weight.copy_(point["2.weight"])
    h = dense_hessian(shifted, _mse_ref, task.x_train, task.y_train)
    assert n == 84 - 10 == h.shape[0]
    v = torch.randn(n, generator=_gen(0), dtype=torch.float64)
    np.testing.assert_allclose(matvec(v).numpy(), h @ v.numpy(), atol=1e-10)
    with pytest.raises(ValueError, match="not parameters"):
        hvp_operator(model, mse, task.x_train, task.y_train, params={"nope": torch.zeros(1)})


class _WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = _tanh_net()
        self.unused = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return self.net(x)


def test_unused_parameters_give_zero_rows():
    model, task = _WithUnused(), _regression()
    matvec, n = hvp_operator(model, mse, task.x_train, task.y_train, dtype=torch.float64)
    h = dense_hessian(model.net, _mse_ref, task.x_train, task.y_train)
    v = torch.randn(n, generator=_gen(0), dtype=torch.float64)
    assert n == 84 + 3 and next(model.named_parameters())[0] == "unused"  # the root's own come first
    hv = matvec(v).numpy()
    np.testing.assert_allclose(hv[3:], h @ v.numpy()[3:], atol=1e-10)
    assert np.all(hv[:3] == 0)


def _exact(model, task, ref_loss):
    h = dense_hessian(model, ref_loss, task.x_train, task.y_train)
    values, vectors = np.linalg.eigh(h)
    return h, values[::-1], vectors[:, ::-1]


@pytest.mark.parametrize("case", CASES)
def test_probe_top_k_trace_density_and_vector(case):
    make_model, make_task, ref_loss, _ = CASES[case]
    model, task = make_model(), make_task()
    h, values, vectors = _exact(model, task, ref_loss)
    out = run_probe("hessian", model, task, k=3, trace=True, density=True, vectors=True, trace_samples=400)
    expected_keys = {"top_0", "top_1", "top_2", "top", "residual", "hvps", "trace", "trace_stderr",
                     "density_grid", "density", "top_eigenvector"}
    assert set(out) == expected_keys
    np.testing.assert_allclose(out["top"], values[:3], rtol=1e-8)
    assert [out[f"top_{i}"] for i in range(3)] == pytest.approx(list(out["top"]), rel=0, abs=0)
    top = out["top_eigenvector"]
    assert top.dtype == np.float64 and top.shape == (h.shape[0],)
    assert abs(top @ vectors[:, 0]) == pytest.approx(1.0, abs=1e-8)
    assert top[np.abs(top).argmax()] > 0 and np.linalg.norm(top) == pytest.approx(1.0, abs=1e-12)
    assert abs(out["trace"] - np.trace(h)) <= 3 * out["trace_stderr"]
    grid, density = out["density_grid"], out["density"]
    assert float(np.sum(density * np.gradient(grid))) == pytest.approx(1.0, abs=1e-12)
    fixed = np.linspace(values[-1] - 1, values[0] + 1, 500)
    again = run_probe("hessian", model, task, density=True, density_grid=fixed, density_sigma=0.05)
    np.testing.assert_array_equal(again["density_grid"], fixed)
    assert out["hvps"] >= 400 + 5 * 1 and out["residual"] <= 1e-8


def test_probe_defaults_loss_by_task_kind_and_mse_on_labels():
    model, task = _tanh_net(4, 8, 3), _classification()
    _, ce_values, _ = _exact(model, task, _ce_ref)
    out = run_probe("hessian", model, task)
    assert set(out) == {"top_0", "top", "residual", "hvps"}
    assert out["top_0"] == pytest.approx(ce_values[0], rel=1e-8)
    onehot = F.one_hot(task.y_train, 3).double()
    _, mse_values, _ = _exact(model, Task(x_train=task.x_train, y_train=onehot), _mse_ref)
    assert run_probe("hessian", model, task, loss="mse")["top_0"] == pytest.approx(mse_values[0], rel=1e-8)
    with pytest.raises(ValueError, match="mse"):
        run_probe("hessian", model, task, loss="hinge")


def test_probe_leaves_model_unchanged_and_is_deterministic():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 10), nn.Tanh(), nn.Dropout(0.5), nn.Linear(10, 4))
    model.train()
    model[1].eval()
    task = _regression()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    first = run_probe("hessian", model, task, k=2, trace=True, density=True, vectors=True, trace_samples=20)
    with torch.no_grad():  # as a training loop may call it
        second = run_probe("hessian", model, task, k=2, trace=True, density=True, vectors=True, trace_samples=20)
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None and p.requires_grad and p.dtype == torch.float32 for p in model.parameters())
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # eval mode: dropout off, so the Hessian is that of the network without dropout
    no_dropout = nn.Sequential(model[0], model[1], model[3])
    _, values, _ = _exact(no_dropout, task, _mse_ref)
    np.testing.assert_allclose(first["top"], values[:2], rtol=1e-8)


def test_probe_float32_and_points():
    model, task = _tanh_net(), _regression(n=60)
    _, values, _ = _exact(model, task, _mse_ref)
    out32 = run_probe("hessian", model, task, float64=False, tol=1e-5)
    assert out32["top_0"] == pytest.approx(values[0], rel=1e-5)
    assert run_probe("hessian", model, task, points=60)["top_0"] == pytest.approx(values[0], rel=1e-8)
    idx = torch.randperm(60, generator=_gen(7))[:25].sort().values  # the documented subsample rule
    _, sub_values, _ = _exact(model, Task(x_train=task.x_train[idx], y_train=task.y_train[idx]), _mse_ref)
    assert run_probe("hessian", model, task, points=25, seed=7)["top_0"] == pytest.approx(sub_values[0], rel=1e-8)


def test_probe_rejects_bad_k():
    model, task = _tanh_net(), _regression()
    with pytest.raises(ValueError, match="k must"):
        run_probe("hessian", model, task, k=0)
    with pytest.raises(ValueError, match="k must"):
        run_probe("hessian", model, task, k=85)


@pytest.mark.parametrize("case", CASES)
def test_spectrum_is_every_eigenvalue_of_the_dense_hessian(case):
    make_model, make_task, ref_loss, _ = CASES[case]
    model, task = make_model(), make_task()
    h = dense_hessian(model, ref_loss, task.x_train, task.y_train)
    expected = np.linalg.eigvalsh(h)
    out = run_probe("hessian", model, task, k=2, spectrum=True, trace=True, trace_samples=50)
    spectrum = out["spectrum"]
    assert spectrum.dtype == np.float64 and spectrum.shape == (h.shape[0],)
    assert np.all(np.diff(spectrum) >= 0)  # ascending
    np.testing.assert_allclose(spectrum, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))
    # the other keys come from the same dense matrix, and it cost n HVPs
    np.testing.assert_allclose(out["top"], expected[::-1][:2], rtol=1e-8)
    assert out["hvps"] == h.shape[0] and out["residual"] <= 1e-8
    assert set(out) == {"top_0", "top_1", "top", "residual", "hvps", "trace", "trace_stderr", "spectrum"}


@pytest.mark.parametrize("chunk", [1, 7, 200])
def test_hessian_matrix_against_dense_reference_for_any_chunk(chunk):
    model, task = _tanh_net(4, 8, 3), _classification()
    h = dense_hessian(model, _ce_ref, task.x_train, task.y_train)
    got = hessian_matrix(model, cross_entropy, task.x_train, task.y_train, dtype=torch.float64, chunk=chunk)
    assert got.dtype == torch.float64 and torch.equal(got, got.T)
    np.testing.assert_allclose(got.numpy(), h, rtol=0, atol=1e-12 * max(1.0, np.abs(h).max()))


def test_hessian_matrix_unused_parameters_and_unbatchable_models(monkeypatch):
    model, task = _WithUnused(), _regression()
    h = dense_hessian(model.net, _mse_ref, task.x_train, task.y_train)
    got = hessian_matrix(model, mse, task.x_train, task.y_train, dtype=torch.float64).numpy()
    assert got.shape == (87, 87) and np.all(got[:3] == 0) and np.all(got[:, :3] == 0)
    np.testing.assert_allclose(got[3:, 3:], h, atol=1e-12)
    # an operation without a batching rule: the batched backward raises, one HVP at a time instead
    grad = torch.autograd.grad

    def no_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("Batching rule not implemented")
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    again = hessian_matrix(model, mse, task.x_train, task.y_train, dtype=torch.float64).numpy()
    np.testing.assert_allclose(again, got, rtol=0, atol=1e-13)


def test_spectrum_refuses_large_models_before_any_work():
    small, task = _tanh_net(), _regression()
    with pytest.raises(ValueError, match="limited to 50 trainable parameters.*has 84"):
        hessian_matrix(small, mse, task.x_train, task.y_train, max_params=50)
    big = nn.Sequential(nn.Linear(3, 1250), nn.Tanh(), nn.Linear(1250, 1))  # 6251 parameters
    assert sum(p.numel() for p in big.parameters()) > SPECTRUM_MAX_PARAMS == 5000
    with pytest.raises(ValueError, match=f"spectrum: the dense Hessian is limited to {SPECTRUM_MAX_PARAMS}"):
        run_probe("hessian", big, _regression(k=1), spectrum=True)
