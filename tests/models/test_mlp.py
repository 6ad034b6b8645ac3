import math

import pytest
import torch

from phenolab.config import ConfigError, MLPSpec, validate
from phenolab.models import MLP, build_model, get_activation


def spec(**kw) -> MLPSpec:
    return validate(MLPSpec, kw)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_and_parameter_names():
    model = build_model(spec(widths=[8, 6]), 3, 2, gen())
    assert model(torch.zeros(5, 3)).shape == (5, 2)
    names = [n for n, _ in model.named_parameters()]
    assert names == [f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert model.layers[1].weight.shape == (6, 8)


def test_no_bias():
    model = build_model(spec(width=5, bias=False), 2, 1, gen())
    assert all(layer.bias is None for layer in model.layers)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype(dtype):
    model = build_model(spec(width=5), 2, 1, gen(), dtype=dtype)
    assert all(p.dtype == dtype for p in model.parameters())
    assert model(torch.zeros(3, 2, dtype=dtype)).dtype == dtype


def test_same_seed_same_weights_different_seed_different():
    s = spec(widths=[20, 20])
    a, b, c = (build_model(s, 3, 1, gen(seed)) for seed in (1, 1, 2))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_global_rng_is_not_used():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    build_model(spec(widths=[20, 20]), 3, 1, gen())
    assert torch.equal(before, torch.get_rng_state())


def test_float32_is_float64_rounded():
    s = spec(width=30)
    m32 = build_model(s, 3, 1, gen(), torch.float32)
    m64 = build_model(s, 3, 1, gen(), torch.float64)
    for p32, p64 in zip(m32.parameters(), m64.parameters()):
        assert torch.equal(p32, p64.float())


def test_gamma_std_of_wide_layer():
    m, gamma = 4000, 0.75
    model = build_model(spec(width=m, init={"gamma": gamma}), 50, 1, gen())
    std = model.layers[0].weight.std().item()
    assert std == pytest.approx(m**-gamma, rel=0.01)
    assert model.layers[1].weight.std().item() == pytest.approx(m**-gamma, rel=0.1)


def test_standard_default_std():
    model = build_model(spec(width=2000), 100, 1, gen())
    assert model.layers[0].weight.std().item() == pytest.approx(0.1, rel=0.01)


def test_ntk_preactivation_variance_is_one():
    d, m = 400, 500
    model = build_model(spec(width=m, parametrization="ntk", bias=False), d, 1, gen())
    assert model.layers[0].weight.std().item() == pytest.approx(1.0, rel=0.01)
    x = torch.randn(200, d, generator=gen(5))  # unit-variance entries
    pre = model.multipliers[0] * x @ model.layers[0].weight.T
    assert pre.var().item() == pytest.approx(1.0, rel=0.05)


def test_per_layer_std_list():
    model = build_model(spec(widths=[1000, 1000], init={"std": [0.5, 0.05, 2.0]}, bias=False), 500, 3, gen())
    stds = [layer.weight.std().item() for layer in model.layers]
    assert stds[0] == pytest.approx(0.5, rel=0.02)
    assert stds[1] == pytest.approx(0.05, rel=0.02)
    assert stds[2] == pytest.approx(2.0, rel=0.1)


def test_zero_bias_std_gives_zero_biases():
    model = build_model(spec(widths=[10, 10], init={"bias_std": 0}), 2, 1, gen())
    assert all(torch.all(layer.bias == 0) for layer in model.layers)


def test_mean_field_output_multiplier_in_forward():
    m = 40
    model = build_model(spec(width=m, parametrization="mean_field", activation="relu"), 2, 1, gen())
    x = torch.randn(7, 2, generator=gen(3))
    hidden, out = model.layers
    h = torch.relu(x @ hidden.weight.T / math.sqrt(2) + hidden.bias)
    expected = h @ out.weight.T / m + out.bias
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_output_scale_multiplies_output():
    s1, s3 = spec(width=10), spec(width=10, output_scale=3.0)
    x = torch.randn(4, 2, generator=gen(1))
    assert torch.allclose(build_model(s3, 2, 1, gen())(x), 3 * build_model(s1, 2, 1, gen())(x))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "sin"])
def test_neurons_reproduce_output(activation):
    model = build_model(spec(width=12, activation=activation, parametrization="ntk", output_scale=0.5), 3, 2, gen())
    w, b, a = model.neurons()
    assert w.shape == (12, 3) and b.shape == (12,) and a.shape == (12, 2)
    x = torch.randn(9, 3, generator=gen(2))
    sigma = get_activation(activation)
    by_hand = sigma(x @ w.T + b) @ a + model.output_scale * model.layers[1].bias
    assert torch.allclose(model(x), by_hand, atol=1e-6)


def test_neurons_without_bias_and_deep_net_raises():
    w, b, a = build_model(spec(width=4, bias=False), 3, 1, gen()).neurons()
    assert b is None
    with pytest.raises(ValueError, match="two-layer"):
        build_model(spec(depth=2, width=4), 3, 1, gen()).neurons()


def test_antisymmetric_init_gives_zero_output():
    s = spec(width=20, init={"antisymmetric": True}, activation="relu")
    x = torch.randn(50, 3, generator=gen(4), dtype=torch.float64)
    # zero in exact arithmetic; the matmul's summation order leaves rounding-level residue
    assert model_abs_max(build_model(s, 3, 2, gen(), torch.float64), x) < 1e-13
    assert model_abs_max(build_model(s, 3, 2, gen(), torch.float32), x.float()) < 1e-5
    plain = build_model(spec(width=20, activation="relu"), 3, 2, gen())
    assert model_abs_max(plain, x.float()) > 0.1
    model = build_model(s, 3, 2, gen())
    w, b, a = model.neurons()
    assert torch.equal(w[:10], w[10:]) and torch.equal(b[:10], b[10:]) and torch.equal(a[:10], -a[10:])
    assert a.abs().min() > 0


def model_abs_max(model: MLP, x: torch.Tensor) -> float:
    with torch.no_grad():
        return model(x).abs().max().item()


def test_antisymmetric_needs_even_width_and_depth_one():
    with pytest.raises(ValueError, match="even"):
        build_model(spec(width=5, init={"antisymmetric": True}), 3, 1, gen())
    with pytest.raises(ValueError, match="two-layer"):
        build_model(spec(depth=2, width=4, init={"antisymmetric": True}), 3, 1, gen())


def test_spec_dims_must_agree_with_task():
    with pytest.raises(ConfigError, match="model.input_dim"):
        build_model(spec(input_dim=4), 3, 1, gen())
    with pytest.raises(ConfigError, match="model.output_dim"):
        build_model(spec(output_dim=4), 3, 1, gen())
    assert isinstance(build_model(spec(input_dim=3, output_dim=1), 3, 1, gen()), MLP)


def test_gradients_flow_to_all_parameters():
    model = build_model(spec(widths=[5, 5]), 2, 1, gen())
    model(torch.randn(4, 2, generator=gen(1))).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_unknown_activation():
    with pytest.raises(ValueError, match="relu"):
        get_activation("swish")


def test_output_bias_can_be_switched_off_alone():
    from phenolab.config import MLPSpec

    spec = MLPSpec(width=8, bias=True, output_bias=False)
    model = build_model(spec, 2, 1, torch.Generator().manual_seed(0))
    assert model.layers[0].bias is not None and model.layers[1].bias is None


def committee(width=6, d=3, alpha=0.7, eps=0.3, **kw) -> MLP:
    s = spec(width=width, activation="quadratic", activation_param=eps, bias=False, fixed_readout=1.0,
             centered=True, output_scale=alpha / width, init={"std": 1.0}, **kw)
    return build_model(s, d, 1, gen(), dtype=torch.float64)


def test_committee_machine_is_the_centred_quadratic_committee():
    """f(x) = (alpha/N) sum_i [phi(w_i . x) - phi(w_i(0) . x)], phi(h) = h + (eps/2) h^2, readouts 1."""
    model = committee()
    x = torch.randn(7, 3, generator=gen(1), dtype=torch.float64)
    assert torch.equal(model.layers[1].weight, torch.ones(1, 6, dtype=torch.float64))
    assert not model.layers[1].weight.requires_grad
    assert torch.equal(model(x), torch.zeros(7, 1, dtype=torch.float64))  # centred: 0 at init
    w0 = model.layers[0].weight.detach().clone()
    with torch.no_grad():
        model.layers[0].weight.add_(0.1 * torch.randn(6, 3, generator=gen(2), dtype=torch.float64))
    w = model.layers[0].weight.detach()

    def phi(h):
        return h + 0.15 * h**2

    expected = 0.7 / 6 * (phi(x @ w.T) - phi(x @ w0.T)).sum(1, keepdim=True)
    torch.testing.assert_close(model(x), expected)
    torch.testing.assert_close(model.preactivations(x)[-1], expected)
    assert sorted(model.state_dict()) == ["layers.0.weight", "layers.1.weight", "reference.weight_0",
                                          "reference.weight_1"]
    assert [p.shape for g in model.param_groups(0.1, "gd") for p in g["params"]] == [(6, 3)]  # readout frozen
    torch.testing.assert_close(model.initial_parameters()[0][0], w0)
    with pytest.raises(ValueError, match="not centred"):
        build_model(spec(width=4), 3, 1, gen()).initial_parameters()


def test_fixed_readout_does_not_train_and_keeps_the_random_streams():
    fixed = build_model(spec(width=5, fixed_readout=2.0), 3, 2, gen())
    free = build_model(spec(width=5), 3, 2, gen())
    assert torch.equal(fixed.layers[0].weight, free.layers[0].weight)  # same draws for the hidden layer
    assert torch.equal(fixed.layers[1].weight, torch.full((2, 5), 2.0))
    x = torch.randn(4, 3, generator=gen(1))
    fixed(x).sum().backward()
    assert fixed.layers[1].weight.grad is None and fixed.layers[0].weight.grad is not None
    assert fixed.layers[1].bias.grad is not None  # an output bias still trains


def test_centred_net_with_biases_and_depth_two_is_zero_at_init_and_pickles():
    import pickle

    model = build_model(spec(widths=[5, 4], activation="quadratic", centered=True), 3, 2, gen())
    x = torch.randn(6, 3, generator=gen(1))
    assert model(x).abs().max().item() == 0.0
    clone = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(clone(x), model(x))
