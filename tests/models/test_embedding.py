"""Critical embedding and reduction operators on two-layer MLPs: same output function, the right
neurons, every parametrization, and the reduction as the inverse."""

from __future__ import annotations

import pytest
import torch

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.models.embedding import (
    activation_symmetry,
    critical_embedding,
    null_embedding,
    reduce_network,
    reduce_neurons,
    split_neuron,
    two_layer_from_neurons,
)

PARAMETRIZATIONS = [{"parametrization": "standard"}, {"parametrization": "ntk"},
                    {"parametrization": "mean_field"}, {"parametrization": "mup", "base_width": 2}]


def net(m=3, k=2, d=2, seed=0, **spec):
    spec = MLPSpec(width=m, **{"activation": "tanh", **spec})
    return build_model(spec, d, k, torch.Generator().manual_seed(seed), torch.float64)


def fresh(d=2, n=64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


def same_function(a, b, atol=1e-12):
    x = fresh(a.layers[0].in_features)
    with torch.no_grad():
        return torch.allclose(a(x), b(x), rtol=0, atol=atol)


@pytest.mark.parametrize("options", PARAMETRIZATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_split_and_null_keep_the_function_in_every_parametrization(options, bias):
    model = net(bias=bias, output_scale=0.5, **options)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wide = split_neuron(model, 1, 0.3)
    assert wide.spec == model.spec.model_copy(update={"width": 4})
    assert wide.multipliers != model.multipliers or options["parametrization"] == "standard"
    assert same_function(wide, model)
    w, b, a = model.neurons()
    w2, b2, a2 = wide.neurons()
    torch.testing.assert_close(w2, torch.cat([w, w[1:2]]))
    torch.testing.assert_close(a2[1], 0.3 * a[1])
    torch.testing.assert_close(a2[3], 0.7 * a[1])
    assert (b2 is None) == (not bias)
    nulled = null_embedding(model, w=torch.tensor([0.4, -1.0]), b=0.2 if bias else None)
    assert nulled.layers[0].out_features == 4 and same_function(nulled, model)
    torch.testing.assert_close(nulled.neurons()[0][3], torch.tensor([0.4, -1.0], dtype=torch.float64))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the input is untouched


def test_critical_embedding_composition_and_widths_spec():
    model = build_model(MLPSpec(widths=[3], activation="tanh"), 2, 1, torch.Generator().manual_seed(1),
                        torch.float64)
    wide = critical_embedding(model, splits=[(0, 0.5), (3, -2.0)], nulls=2)
    assert wide.spec.widths == [7] and wide.layers[0].out_features == 7
    assert same_function(wide, model)
    a = wide.neurons()[2][:, 0]
    a0 = model.neurons()[2][0, 0]
    torch.testing.assert_close(a[[0, 3, 4]], torch.stack([0.5 * a0, -1.0 * a0, 1.5 * a0]))
    torch.testing.assert_close(a[5:], torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one"):
        critical_embedding(model)


def test_antisymmetric_spec_embeds_to_odd_width():
    model = net(m=4, init={"antisymmetric": True})
    wide = split_neuron(model, 0, 0.5)
    assert wide.spec.hidden_widths == [5] and not wide.spec.init.antisymmetric
    assert same_function(wide, model)


@pytest.mark.parametrize("options", PARAMETRIZATIONS)
@pytest.mark.parametrize("bias,k", [(False, 1), (True, 2)])
def test_reduce_inverts_embeddings(options, bias, k):
    model = net(bias=bias, k=k, **options)
    wide = critical_embedding(model, splits=[(2, 0.25), (0, -0.5), (3, 2.0)], nulls=1)
    wide = null_embedding(wide, w=torch.tensor([1.0, 2.0]))  # zero output, non-zero input weight
    back = reduce_network(wide)
    assert back.spec == model.spec
    assert same_function(back, model, atol=1e-12)
    torch.testing.assert_close(back.neurons()[0], model.neurons()[0])
    torch.testing.assert_close(back.neurons()[2], model.neurons()[2])


def test_reduce_merges_duplicates_and_sign_flips_by_activation():
    w = torch.tensor([[1.0, 2.0], [0.5, 0.0], [1.0, 2.0], [-1.0, -2.0], [0.0, 0.0], [-0.5, 0.0]], dtype=torch.float64)
    a = torch.tensor([1.0, 3.0, 2.0, 0.5, 4.0, 3.0], dtype=torch.float64)
    w_r, b_r, a_r = reduce_neurons(w, None, a, odd=True, zero_at_zero=True)
    torch.testing.assert_close(w_r, w[:1])  # neuron 1 cancels against its flipped copy 5
    torch.testing.assert_close(a_r, torch.tensor([[2.5]], dtype=torch.float64))
    assert b_r is None
    w_r, _, a_r = reduce_neurons(w, None, a, odd=False, zero_at_zero=False)  # e.g. sigmoid
    torch.testing.assert_close(w_r, w[[0, 1, 3, 4, 5]])
    torch.testing.assert_close(a_r[:, 0], torch.tensor([3.0, 3.0, 0.5, 4.0, 3.0], dtype=torch.float64))
    b = torch.tensor([0.1, 0.0, 0.1, 0.1, 0.0, 0.0], dtype=torch.float64)  # breaks the flip of neuron 3
    w_r, b_r, a_r = reduce_neurons(w, b, a, odd=True, zero_at_zero=True, atol=1e-8)
    torch.testing.assert_close(w_r, w[[0, 3]])
    torch.testing.assert_close(b_r, b[[0, 3]])
    torch.testing.assert_close(a_r[:, 0], torch.tensor([3.0, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "xtanh"])
def test_reduce_network_on_zero_output_and_duplicated_neurons(activation):
    spec = MLPSpec(width=5, activation=activation, bias=False)
    w = torch.tensor([[1.0, 0.5], [0.0, 0.0], [1.0, 0.5], [-1.0, -0.5], [0.3, -2.0]], dtype=torch.float64)
    a = torch.tensor([1.0, 0.7, -0.25, 0.5, 0.0], dtype=torch.float64)
    model = two_layer_from_neurons(spec, w, None, a)
    reduced = reduce_network(model)
    odd, zero = activation_symmetry(model.sigma)
    widths = {"tanh": 1, "sigmoid": 3, "xtanh": 2}  # flip merges when odd; w = 0 drops when sigma(0) = 0
    assert (odd, zero) == {"tanh": (True, True), "sigmoid": (False, False), "xtanh": (False, True)}[activation]
    assert reduced.layers[0].out_features == widths[activation]
    assert same_function(reduced, model)


def test_reduce_to_a_constant_keeps_one_null_neuron():
    spec = MLPSpec(width=2, activation="tanh", bias=True)
    model = two_layer_from_neurons(spec, torch.ones(2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                                   torch.tensor([1.0, -1.0], dtype=torch.float64), c=torch.tensor([0.7]))
    reduced = reduce_network(model)
    assert reduced.layers[0].out_features == 1 and same_function(reduced, model)
    torch.testing.assert_close(reduced(fresh()), torch.full((64, 1), 0.7, dtype=torch.float64))


def test_two_layer_from_neurons_sets_effective_weights():
    spec = MLPSpec(width=7, parametrization="mean_field", output_scale=2.0)
    w = torch.tensor([[1.0, -2.0], [0.5, 0.25]], dtype=torch.float64)
    b, a, c = torch.tensor([0.1, -0.2]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0.5, -0.5])
    model = two_layer_from_neurons(spec, w, b, a, c)
    assert model.spec.width == 2 and model.layers[0].weight.dtype == torch.float64
    got_w, got_b, got_a = model.neurons()
    torch.testing.assert_close(got_w, w)
    torch.testing.assert_close(got_b, b.double())
    torch.testing.assert_close(got_a, a.double())
    x = fresh()
    expected = torch.tanh(x @ w.T + b.double()) @ a.double() + c.double()
    torch.testing.assert_close(model(x), expected)
    zero_biases = two_layer_from_neurons(spec, w, None, a[:, 0])  # b, c None: zeros
    torch.testing.assert_close(zero_biases(x), torch.tanh(x @ w.T) @ a[:, :1].double())


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="fixed_readout"):
        split_neuron(net(k=1, fixed_readout=1.0), 0, 0.5)
    with pytest.raises(ValueError, match="centered"):
        null_embedding(net(centered=True))
    with pytest.raises(ValueError, match="depth 1"):
        split_neuron(build_model(MLPSpec(width=3, depth=2), 2, 1, torch.Generator().manual_seed(0)), 0, 0.5)
    with pytest.raises(ValueError, match="j: neuron index"):
        split_neuron(net(), 3, 0.5)
    with pytest.raises(ValueError, match="delta"):
        split_neuron(net(), 0, float("nan"))
    with pytest.raises(ValueError, match="no hidden biases"):
        null_embedding(net(bias=False), b=1.0)
    with pytest.raises(ValueError, match="2 entries"):
        null_embedding(net(), w=torch.ones(3))
    with pytest.raises(ValueError, match="no output bias"):
        two_layer_from_neurons(MLPSpec(width=1, bias=False), torch.ones(1, 2), None, torch.ones(1), c=torch.ones(1))
