import math

import pytest
import torch

from phenolab.config import ConfigError, RunSpec, validate
from phenolab.tasks import make_task


def data(**kw):
    return validate(RunSpec, {"data": kw}).data


def test_sines_grid():
    task = make_task(data(kind="sines", n_train=11, n_test=21, interval=[-1, 1]), seed=0)
    assert task.grid and task.kind == "regression"
    assert task.x_train.shape == (11, 1) and task.y_train.shape == (11, 1)
    assert torch.allclose(task.x_train[:, 0], torch.linspace(-1, 1, 11), atol=1e-6)
    assert task.x_test.shape == (21, 1)
    assert task.x_test.min().item() == pytest.approx(-1.5) and task.x_test.max().item() == pytest.approx(1.5)
    assert torch.allclose(task.y_test, task.target(task.x_test))
    assert task.info["frequencies"] == [1.0, 3.0, 5.0] and task.info["interval"] == (-1.0, 1.0)
    assert task.input_dim == 1 and task.output_dim == 1


def test_sines_values():
    task = make_task(data(kind="sines", frequencies=[2.0], amplitudes=[0.5]), seed=0)
    assert torch.allclose(task.y_train, 0.5 * torch.sin(2 * task.x_train), atol=1e-6)


def test_sines_dft_peaks_at_frequencies():
    n = 201  # x_j = -pi + 2 pi j / 200: the first 200 points are exactly one period
    task = make_task(data(kind="sines", n_train=n, interval=[-math.pi, math.pi], frequencies=[1, 3, 7],
                          amplitudes=[1, 2, 3]), seed=0, dtype=torch.float64)
    spectrum = torch.fft.rfft(task.y_train[:-1, 0]).abs()
    peaks = sorted(torch.topk(spectrum, 3).indices.tolist())
    assert peaks == [1, 3, 7]
    assert spectrum[[1, 3, 7]] / 100 == pytest.approx(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), rel=1e-9)


def test_sines_uniform_sorted_in_interval_and_seeded():
    spec = data(kind="sines", sampling="uniform", n_train=50, n_test=30, interval=[0, 2])
    task = make_task(spec, seed=1)
    x = task.x_train[:, 0]
    assert not task.grid
    assert torch.all(x[1:] >= x[:-1]) and x.min() >= 0 and x.max() <= 2
    assert task.x_test.min() >= 0 and task.x_test.max() <= 2
    assert torch.equal(x, make_task(spec, seed=1).x_train[:, 0])
    assert not torch.equal(x, make_task(spec, seed=2).x_train[:, 0])


def test_noise_only_on_train():
    clean = make_task(data(kind="sines", n_test=10), seed=0)
    noisy = make_task(data(kind="sines", n_test=10, noise=0.1), seed=0)
    resid = noisy.y_train - clean.y_train
    assert resid.std().item() == pytest.approx(0.1, rel=0.3)
    assert torch.equal(noisy.y_test, clean.y_test)
    assert torch.allclose(noisy.target(noisy.x_train), clean.y_train)


def test_data_seed_overrides_run_seed():
    spec = data(kind="teacher", seed=7)
    assert torch.equal(make_task(spec, seed=0).x_train, make_task(spec, seed=1).x_train)


@pytest.mark.parametrize("kind", ["sines", "expression", "teacher", "ridge", "digits"])
def test_make_task_is_deterministic_and_typed(kind):
    extra = {"expr": "sin(3*x)", "sampling": "uniform"} if kind == "expression" else {}
    spec = data(kind=kind, n_train=40, n_test=10, **extra)
    a, b = make_task(spec, seed=3), make_task(spec, seed=3)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.x_train.dtype == torch.float32
    a64 = make_task(spec, seed=3, dtype=torch.float64)
    assert a64.x_train.dtype == torch.float64 and a64.y_train.dtype == torch.float64
    assert torch.equal(a64.x_train.float(), a.x_train)


def test_expression_evaluates_on_tensors():
    task = make_task(data(kind="expression", expr="sin(pi*x) + 0.5*abs(x) + where(x > 0, x**2, 0)",
                          n_test=5), seed=0)
    x = task.x_train
    expected = torch.sin(math.pi * x) + 0.5 * x.abs() + torch.where(x > 0, x**2, 0.0)
    assert torch.allclose(task.y_train, expected, atol=1e-6)
    z = torch.tensor([[-0.5], [0.25]], dtype=torch.float64)
    assert task.target(z).shape == (2, 1) and task.target(z).dtype == torch.float64


def test_expression_functions_and_constants():
    task = make_task(data(kind="expression", expr="clip(x, -0.5, 0.5) + minimum(x, 0) + maximum(x, 0) "
                          "- (x < 0) + e + sign(x) + floor(2*x) + arctan(x) + exp(x) + sqrt(x*x)"), seed=0)
    x = task.x_train.double()
    expected = (x.clamp(-0.5, 0.5) + x - (x < 0).double() + math.e + x.sign() + torch.floor(2 * x)
                + torch.atan(x) + torch.exp(x) + x.abs())
    assert torch.allclose(task.y_train.double(), expected, atol=1e-5)


def test_constant_expression_is_broadcast():
    task = make_task(data(kind="expression", expr="2.5"), seed=0)
    assert task.y_train.shape == (101, 1) and torch.all(task.y_train == 2.5)


@pytest.mark.parametrize("expr", ["__import__('os')", "x.__class__", "x.sum()", "lambda: 1", "'a'",
                                  "open('f')", "y + 1", "sin", "[x]", "x if x else 1", "x and 1",
                                  "sin(x, key=1)", "sin(x", "log(x - 2)", "sin(x, x)",
                                  "1/(x - x)", "1" + "0" * 400, "-" * 100000 + "x"])
def test_expression_rejects(expr):
    with pytest.raises(ConfigError, match="data.expr") as err:
        make_task(data(kind="expression", expr=expr), seed=0)
    assert repr(expr) in str(err.value)


def test_teacher_matches_its_weights():
    task = make_task(data(kind="teacher", input_dim=6, width=3, n_train=100, n_test=20, activation="relu"),
                     seed=0, dtype=torch.float64)
    assert task.x_train.shape == (100, 6) and task.y_train.shape == (100, 1) and task.y_test.shape == (20, 1)
    assert task.x_train.abs().max() <= 1 and task.x_train.min() < -0.9
    w, a = task.info["teacher_w"], task.info["teacher_a"]
    assert w.shape == (3, 6) and a.shape == (3, 1)
    assert torch.allclose(task.y_train, torch.relu(task.x_train @ w.T) @ a)
    assert torch.allclose(task.target(task.x_test), task.y_test)
    assert task.info["input_dim"] == 6


def test_ridge_directions_are_unit_and_define_target():
    task = make_task(data(kind="ridge", input_dim=4, frequencies=[2.0, 5.0], amplitudes=[1.0, 0.5],
                          n_train=64), seed=0, dtype=torch.float64)
    u = task.info["directions"]
    assert u.shape == (2, 4)
    assert torch.allclose(u.norm(dim=1), torch.ones(2, dtype=torch.float64))
    x = task.x_train
    expected = torch.sin(2 * x @ u[0]) + 0.5 * torch.sin(5 * x @ u[1])
    assert torch.allclose(task.y_train[:, 0], expected)
    assert task.x_test is None and task.y_test is None


def test_digits_one_hot():
    task = make_task(data(kind="digits", n_train=100, n_test=50), seed=0)
    assert task.kind == "classification"
    assert task.x_train.shape == (100, 64) and task.x_test.shape == (50, 64)
    assert task.x_train.min() >= 0 and task.x_train.max() <= 1 and task.x_train.max() == 1
    assert task.y_train.shape == (100, 10) and task.y_train.dtype == torch.float32
    assert torch.all(task.y_train.sum(1) == 1) and set(task.y_train.unique().tolist()) == {0.0, 1.0}
    assert task.output_dim == 10 and task.info["n_classes"] == 10


def test_digits_labels_and_split():
    task = make_task(data(kind="digits", n_train=1000, n_test=797, one_hot=False), seed=0)
    assert task.y_train.dtype == torch.int64 and task.y_train.shape == (1000,)
    assert set(task.y_train.tolist()) == set(range(10))
    assert task.output_dim == 10
    from sklearn.datasets import load_digits

    full = load_digits()
    rows = torch.cat([task.x_train, task.x_test]).double()
    assert rows.sum().item() == pytest.approx(full.data.sum() / 16)  # every image exactly once
    assert torch.bincount(torch.cat([task.y_train, task.y_test])).tolist() == torch.bincount(
        torch.as_tensor(full.target)).tolist()
    other = make_task(data(kind="digits", n_train=1000, n_test=797, one_hot=False), seed=1)
    assert not torch.equal(task.y_train, other.y_train)
    assert torch.equal(torch.bincount(torch.cat([task.y_train, task.y_test])),
                       torch.bincount(torch.cat([other.y_train, other.y_test])))


def test_digits_too_many():
    with pytest.raises(ConfigError, match=r"data: n_train \+ n_test must be <= 1797"):
        make_task(data(kind="digits", n_train=1700, n_test=100), seed=0)


def test_coordinate_sines_target_and_interval():
    task = make_task(data(kind="coordinate_sines", n_train=80, n_test=20), seed=0)
    x, y = task.x_train.double(), task.y_train.double()
    assert x.shape == (80, 5) and y.shape == (80, 1) and task.x_test.shape == (20, 5)
    assert float(x.min()) >= -4.0 and float(x.max()) <= 2.0
    assert torch.allclose(y, 3.5 * torch.sin(5 * x + 1).sum(1, keepdim=True), atol=1e-5)


def test_product_target_on_circle_and_gaussian_points():
    gauss = make_task(data(kind="product", sampling="gaussian", n_train=64), seed=0)
    xg = gauss.x_train.double()
    assert torch.allclose(gauss.y_train.double()[:, 0], xg[:, 0] * xg[:, 1], atol=1e-5)
    assert 0.5 < float(xg.std()) < 1.5
    task = make_task(data(kind="product", n_train=8), seed=3)
    x = task.x_train.double()
    assert torch.allclose(x.norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(task.y_train.double()[:, 0], x[:, 0] * x[:, 1], atol=1e-6)
    assert torch.equal(task.x_train, make_task(data(kind="product", n_train=8), seed=4).x_train)


def test_gaussian_mixture_balanced_labels_around_their_centres():
    task = make_task(data(kind="gaussian_mixture", classes=3, n_train=300, spread=10.0), seed=0)
    assert task.kind == "classification" and task.output_dim == 3
    assert torch.bincount(task.y_train).tolist() == [100, 100, 100]
    centres = task.info["centres"]
    nearest = torch.cdist(task.x_train, centres).argmin(dim=1)
    assert (nearest == task.y_train).float().mean() > 0.95  # clusters far apart: nearest centre is the label


def test_linear_teacher_is_linear_in_x():
    task = make_task(data(kind="linear_teacher", input_dim=5, n_train=50), seed=0)
    beta = torch.linalg.lstsq(task.x_train.double(), task.y_train.double()).solution
    assert torch.allclose(beta, task.info["beta"].double(), atol=1e-4)


def test_quadratic_teacher_target_inputs_and_fresh_samples():
    task = make_task(data(kind="quadratic_teacher", input_dim=8, n_train=2000, n_test=50), seed=0)
    beta = task.info["beta"].double()
    x = task.x_train.double()
    torch.testing.assert_close(task.y_train.double(), 0.5 * (x @ beta) ** 2, rtol=1e-5, atol=1e-6)
    assert task.x_test.shape == (50, 8) and task.y_test.shape == (50, 1)
    # x ~ N(0, I/d): E |x|^2 = 1
    assert (x**2).sum(1).mean().item() == pytest.approx(1.0, abs=0.05)
    fresh = task.sample(3000, torch.Generator().manual_seed(1))
    assert fresh.shape == (3000, 8) and fresh.dtype == task.x_train.dtype
    assert (fresh.double() ** 2).sum(1).mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(fresh, task.sample(3000, torch.Generator().manual_seed(1)))
    again = make_task(data(kind="quadratic_teacher", input_dim=8, n_train=2000, n_test=50), seed=0)
    assert torch.equal(again.x_train, task.x_train) and torch.equal(again.info["beta"], task.info["beta"])


def test_a_token_task_declares_its_vocabulary_and_shapes():
    from phenolab.tasks.base import Task

    x = torch.randint(0, 9, (5, 4))
    task = Task(x_train=x, y_train=x.clone(), kind="tokens", vocab=9)
    assert task.input_shape == (4,) and task.output_dim == 9
    with pytest.raises(ValueError, match="token targets need a vocab"):
        Task(x_train=x, y_train=x.clone(), kind="tokens")


def test_every_data_kind_has_a_registered_builder_and_a_new_kind_needs_one_line():
    from typing import Literal

    from phenolab.config import DATA_KINDS, KindSpec
    from phenolab.tasks import registry
    from phenolab.tasks.base import Task
    from phenolab.tasks.registry import register_task, task_kinds

    assert set(task_kinds()) == set(DATA_KINDS.kinds())

    class Constant(KindSpec):
        kind: Literal["test_constant"] = "test_constant"
        value: float = 2.0
        seed: int | None = None

    def build(spec, generator, dtype):
        x = torch.linspace(-1, 1, 5, dtype=dtype)[:, None]
        return Task(x_train=x, y_train=torch.full_like(x, spec.value))

    register_task(Constant, build)
    try:
        task = make_task(validate(RunSpec, {"data": {"kind": "test_constant", "value": 3}}).data, 0)
        assert float(task.y_train.mean()) == 3.0
    finally:
        DATA_KINDS._kinds.pop("test_constant")
        registry._BUILDERS.pop("test_constant")
