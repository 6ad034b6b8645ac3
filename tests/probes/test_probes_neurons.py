"""`two_layer_neurons` and `first_layer` on phenolab's MLP and on user modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes.neurons import first_layer, is_two_layer, two_layer_neurons


def _mlp(parametrization: str = "standard", output_scale: float = 1.0, width: int = 7, d: int = 3, k: int = 2):
    spec = MLPSpec(width=width, activation="relu", parametrization=parametrization, output_scale=output_scale)
    return build_model(spec, d, k, torch.Generator().manual_seed(0), dtype=torch.float64)


def _sequential(d: int = 3, m: int = 7, k: int = 2) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k)).double()


def _from_neurons(w, b, a, c, x):
    """sum_k a_k relu(w_k . x + b_k) + c."""
    return torch.relu(x @ w.T + b) @ a + c


@pytest.mark.parametrize("parametrization", ["standard", "ntk", "mean_field"])
def test_mlp_neurons_reproduce_output(parametrization):
    model = _mlp(parametrization, output_scale=0.3)
    x = torch.randn(11, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w, b, a = two_layer_neurons(model)
    c = model.output_scale * model.layers[1].bias
    assert w.shape == (7, 3) and b.shape == (7,) and a.shape == (7, 2)
    torch.testing.assert_close(_from_neurons(w, b, a, c, x), model(x).detach())


def test_sequential_neurons_reproduce_output():
    model = _sequential()
    x = torch.randn(11, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w, b, a = two_layer_neurons(model)
    torch.testing.assert_close(_from_neurons(w, b, a, model[2].bias, x), model(x).detach())
    assert torch.equal(a, model[2].weight.T)


def test_params_replace_live_parameters_for_both_kinds():
    for model in (_mlp("ntk", output_scale=2.0), _sequential()):
        start = {key: value.clone() for key, value in model.state_dict().items()}
        w0, b0, a0 = two_layer_neurons(model)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        w, b, a = two_layer_neurons(model, start)
        torch.testing.assert_close((w, b, a), (w0, b0, a0))
        assert not torch.allclose(two_layer_neurons(model)[0], w0)
        torch.testing.assert_close(first_layer(model, start), (w0, b0))


def test_mlp_uses_its_multipliers_like_neurons_method():
    model = _mlp("ntk", output_scale=0.5)
    for got, want in zip(two_layer_neurons(model), model.neurons()):
        torch.testing.assert_close(got, want)
    assert torch.allclose(two_layer_neurons(model)[0], model.layers[0].weight / 3**0.5)


def test_no_bias_gives_none():
    model = nn.Sequential(nn.Linear(2, 4, bias=False), nn.Tanh(), nn.Linear(4, 1))
    w, b, a = two_layer_neurons(model)
    assert b is None and w.shape == (4, 2) and a.shape == (4, 1)


def test_three_linear_layers_raise_clear_error_but_first_layer_works():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 1))
    assert not is_two_layer(model)
    with pytest.raises(ValueError, match=r"found 3 nn.Linear layers.*'0', '2', '4'.*supported"):
        two_layer_neurons(model)
    w, b = first_layer(model)
    assert torch.equal(w, model[0].weight) and torch.equal(b, model[0].bias)


def test_deep_mlp_and_other_parameters_are_rejected():
    deep = build_model(MLPSpec(width=4, depth=2), 1, 1, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="3 nn.Linear layers in MLP"):
        two_layer_neurons(deep)
    assert first_layer(deep)[0].shape == (4, 1)
    normed = nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"parameters outside the two nn.Linear layers: \['1.weight', '1.bias'\]"):
        two_layer_neurons(normed)
    with pytest.raises(ValueError, match="no nn.Linear"):
        first_layer(nn.Conv1d(1, 1, 3))


def test_missing_params_entry_is_named():
    model = _sequential()
    with pytest.raises(KeyError, match="'0.weight'"):
        two_layer_neurons(model, {"2.weight": model[2].weight})


def test_probe_requirements_are_checked_on_the_model_and_task():
    from phenolab.models.conv import Conv1dSumPool
    from phenolab.probes.registry import check_requirements
    from phenolab.tasks.base import Task

    x = torch.randn(8, 4)
    regression = Task(x_train=x, y_train=torch.randn(8, 1))
    conv = Conv1dSumPool(4, 2, dtype=torch.float32)
    problems = check_requirements(["loss", "condensation", "accuracy"], conv, regression)
    assert problems == [
        "probes[1]: probe 'condensation' needs an nn.Linear input layer (its neurons); Conv1dSumPool has no "
        "nn.Linear input layer",
        "probes[2]: probe 'accuracy' needs a classification task; task 'task' is regression",
    ]
    two_layer = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    assert check_requirements(["condensation", "saddle_branches"], two_layer, regression) == []
