"""The coordinate-check probes `coord` and `coord_change` (TP5, arXiv:2203.03466) on phenolab's
MLP and on a user's nn.Sequential."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes import get_probe, run_probe
from phenolab.probes.registry import needs_reference
from phenolab.tasks import Task

from fn_model import Fn


def _task(n: int = 30, d: int = 3) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return Task(x_train=x, y_train=x[:, :1] ** 2, x_test=2 * x[:5], y_test=x[:5, :1])


def _mlp(parametrization: str = "mup") -> nn.Module:
    spec = MLPSpec(widths=[16, 8], activation="tanh", parametrization=parametrization, output_scale=0.5)
    return build_model(spec, 3, 2, torch.Generator().manual_seed(1))


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().double().pow(2).mean().sqrt())


def _manual_preacts(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """h_l = mult_l (x W_l^T) + b_l; the last: output_scale * h_{L+1} = model(x)."""
    out, h = [], x
    for i, (layer, mult) in enumerate(zip(model.layers, model.multipliers)):
        z = mult * (h @ layer.weight.T) + layer.bias
        out.append(z if i < len(model.layers) - 1 else model.output_scale * z)
        h = torch.tanh(z)
    return [v.detach() for v in out]


def test_registered_and_reference_flag():
    assert get_probe("coord") and get_probe("coord_change")
    assert not needs_reference("coord") and needs_reference("coord_change")


def test_coord_on_the_mlp_is_the_rms_of_each_layer():
    model, task = _mlp(), _task()
    out = run_probe("coord", model, task)
    expected = [_rms(h) for h in _manual_preacts(model, task.x_train)]
    assert sorted(out) == ["rms", "rms_0", "rms_1", "rms_2"]
    assert out["rms"] == pytest.approx(expected, rel=1e-5)
    assert [out[f"rms_{i}"] for i in range(3)] == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        assert out["rms_2"] == pytest.approx(_rms(model(task.x_train)), rel=1e-6)
    test = run_probe("coord", model, task, split="test")
    assert test["rms_0"] == pytest.approx(_rms(_manual_preacts(model, task.x_test)[0]), rel=1e-5)


def test_coord_on_a_user_sequential_uses_its_linear_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 10), nn.ReLU(), nn.Linear(10, 6), nn.Tanh(), nn.Linear(6, 1))
    task = _task()
    out = run_probe("coord", model, task)
    h1 = model[0](task.x_train)
    h2 = model[2](torch.relu(h1))
    h3 = model[4](torch.tanh(h2))
    assert out["rms"] == pytest.approx([_rms(h1), _rms(h2), _rms(h3)], rel=1e-6)


def test_coord_change_is_zero_at_the_reference_and_the_change_after_an_edit():
    model, task = _mlp(), _task()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    out = run_probe("coord_change", model, task, reference=reference)
    assert sorted(out) == ["delta", "delta_0", "delta_1", "delta_2"]
    assert np.all(out["delta"] == 0)
    before = _manual_preacts(model, task.x_train)
    with torch.no_grad():
        model.layers[1].weight.add_(0.1)
    after = _manual_preacts(model, task.x_train)
    out = run_probe("coord_change", model, task, reference=reference)
    expected = [_rms(a - b) for a, b in zip(after, before)]
    assert expected[0] == 0 and expected[1] > 0 and expected[2] > 0
    assert out["delta"] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert torch.equal(model.layers[1].weight, reference["layers.1.weight"] + 0.1)  # the model is left as it was


def test_coord_change_on_a_user_sequential_and_flags_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 10), nn.Tanh(), nn.Dropout(0.5), nn.Linear(10, 1))
    model.train()
    task = _task()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].bias.add_(0.2)
    out = run_probe("coord_change", model, task, reference=reference)
    assert out["delta_0"] == pytest.approx(0.2, rel=1e-5)
    with torch.no_grad():
        new = model[3](torch.tanh(model[0](task.x_train)))
        old = model[3](torch.tanh(model[0](task.x_train) - 0.2))
    assert out["delta_1"] == pytest.approx(_rms(new - old), rel=1e-4)  # dropout off during the probe
    assert model.training and model[2].training


def test_errors_name_what_is_missing():
    task = _task()
    with pytest.raises(ValueError, match="needs reference"):
        run_probe("coord_change", _mlp(), task)
    with pytest.raises(ValueError, match="nn.Linear layers or a preactivations"):
        run_probe("coord", Fn(lambda x: x ** 2), task)
    no_test = Task(x_train=task.x_train, y_train=task.y_train)
    with pytest.raises(ValueError, match="split"):
        run_probe("coord", _mlp(), no_test, split="test")
