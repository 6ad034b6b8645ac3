"""muP in training: per-layer learning rates in the plain and the ensemble trainer, and the
coordinate check COORD-1 (docs/specs/mup-coordinate-check.md; TP V, arXiv:2203.03466 Sec. 3, mup package)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phenolab.config import MLPSpec, RunSpec, TrainSpec, validate
from phenolab.models import build_model
from phenolab.probes import run_probe
from phenolab.tasks import Task, make_task
from phenolab.train import generator, train
from phenolab.train.ensemble import train_ensemble

pytestmark = pytest.mark.usefixtures("one_thread")


# -------------------------------------------------------------------------- coordinate check
WIDTHS = [64, 256, 1024]
SEEDS = [0, 1, 2]


def regression_task(d: int = 8, n: int = 64, amplitude: float = 4.0) -> Task:
    """y = A sin(2 beta . x / sqrt(d)), x ~ N(0, I_d): a fixed batch; A = 4 so that the target,
    not the random initial output (which shrinks with width under muP), sets the residual."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    beta = torch.randn(d, 1, generator=g, dtype=torch.float64)
    return Task(x_train=x, y_train=amplitude * torch.sin(2 * x @ beta / math.sqrt(d)))


def coordinate_change(task: Task, parametrization: str, width: int, optimizer: str, lr: float, seed: int) -> np.ndarray:
    """delta_l (hidden 1, hidden 2, output) after 3 updates of a width-`width` 2-hidden-layer tanh net."""
    extra = {"base_width": WIDTHS[0]} if parametrization == "mup" else {}
    spec = validate(MLPSpec, {"widths": [width, width], "activation": "tanh",
                                "parametrization": parametrization, **extra})
    model = build_model(spec, task.input_dim, task.output_dim, generator(seed, "model"), torch.float64)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, task, validate(TrainSpec, {"optimizer": optimizer, "lr": lr, "steps": 3, "dtype": "float64"}))
    assert result.status == "done", result.reason
    return run_probe("coord_change", model, task, reference=reference)["delta"]


def width_slopes(parametrization: str, optimizer: str, lr: float) -> np.ndarray:
    """Slope of log(seed-mean delta_l) against log(width), per layer (hidden 1, hidden 2, output)."""
    task = regression_task()
    deltas = np.array([[coordinate_change(task, parametrization, w, optimizer, lr, s) for s in SEEDS]
                       for w in WIDTHS]).mean(axis=1)
    return np.polyfit(np.log(WIDTHS), np.log(deltas), 1)[0]


@pytest.mark.parametrize("optimizer,lr", [("gd", 0.05), ("adam", 1e-3)])
def test_coordinate_check_mup_is_flat_in_width(optimizer, lr):
    slopes = width_slopes("mup", optimizer, lr)
    assert np.all(np.abs(slopes) < 0.15), slopes


def test_coordinate_check_ntk_hidden_changes_shrink_like_n_to_minus_half():
    """COORD-1: under NTP the hidden layers' changes shrink like n^-1/2, the output's is flat."""
    slopes = width_slopes("ntk", "gd", 0.05)
    assert np.all((-0.7 <= slopes[:2]) & (slopes[:2] <= -0.3)), slopes
    assert abs(slopes[2]) <= 0.15, slopes


@pytest.mark.parametrize("optimizer,lr", [("gd", 0.05), ("adam", 1e-3)])
def test_coordinate_check_standard_blows_up_at_the_same_lr(optimizer, lr):
    """COORD-1: SP at muP's base learning rate (they coincide at the base width 64)."""
    slopes = width_slopes("standard", optimizer, lr)
    assert slopes[1] >= 0.3 or slopes[2] >= 0.3, slopes


# ------------------------------------------------------------------ per-layer lr in training
def test_one_gd_step_of_the_plain_trainer_uses_the_per_layer_lr():
    task = regression_task(d=3, n=20, amplitude=1.0)
    spec = validate(MLPSpec, {"widths": [32, 16], "activation": "tanh", "parametrization": "mup", "base_width": 8})
    model = build_model(spec, 3, 1, generator(0, "model"), torch.float64)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = ((model(task.x_train) - task.y_train) ** 2).mean()
    grads = dict(zip(start, torch.autograd.grad(loss, list(model.parameters()))))
    train(model, task, validate(TrainSpec, {"optimizer": "gd", "lr": 0.01, "steps": 1, "dtype": "float64"}))
    scales = model.lr_scales("gd")
    assert [scales[n] for n in start] == [4, 4, 1 / 2, 2, 2, 1]
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), start[name] - 0.01 * scales[name] * grads[name], msg=name)


# ---------------------------------------------------------------- the ensemble trainer
def run_spec(seed: int, lr: float, activation: str, optimizer: str, **train_kw) -> RunSpec:
    return validate(RunSpec, {
        "model": {"width": 64, "activation": activation, "parametrization": "mup", "base_width": 16},
        "data": {"kind": "sines", "n_train": 50, "interval": [-2, 2], "frequencies": [1.0, 2.0],
                 "amplitudes": [1.0, 0.5], "seed": 0},
        "train": {"optimizer": optimizer, "lr": lr, "steps": 100, "probe_every": 50, **train_kw},
        "seed": seed,
    })


# The fused path (exact prefix-sum gradients of 1-D two-layer ReLU nets) sums in float64: in float32
# a data point within rounding distance of a neuron's kink can fall on the other side than in the
# plain trainer and move that neuron by ~1e-4 (seen at lr 0.02 after ~100 steps), so it is held
# to 1e-5 in float64; the stacked path (autograd, as the plain trainer) in float32.
@pytest.mark.parametrize("activation,path,dtype", [("relu", "fused", "float64"), ("relu", "stacked", "float32"),
                                                   ("tanh", "stacked", "float32")])
@pytest.mark.parametrize("optimizer,lrs,extra", [
    ("gd", [0.01, 0.02, 0.005], {}),
    ("sgd", [0.01, 0.005, 0.002], {"batch_size": 16, "momentum": 0.9}),
    ("adam", [1e-3, 3e-3, 2e-3], {"batch_size": 16}),
])
def test_the_ensemble_trains_mup_members_as_the_plain_trainer(activation, path, dtype, optimizer, lrs, extra):
    specs = [run_spec(seed, lr, activation, optimizer, dtype=dtype, **extra) for seed, lr in enumerate(lrs)]
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    task = make_task(specs[0].data, specs[0].seed, dtype=torch_dtype)
    for member, spec in zip(train_ensemble(task, specs, path=path), specs):
        model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"), torch_dtype)
        plain = train(model, task, spec.train, generator=generator(spec.seed, "batches"))
        assert (member.status, member.steps) == (plain.status, plain.steps) == ("done", 100)
        assert member.final_loss == pytest.approx(plain.final_loss, rel=1e-5, abs=1e-7)
        for name, p in model.named_parameters():
            assert (member.state[name] - p.detach()).abs().max().item() < 1e-5, name
