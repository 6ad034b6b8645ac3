"""muP's table (Tensor Programs V, arXiv:2203.03466, Tables 3 and 8): multipliers, init, per-layer
learning rates at two widths; its width exponents; the other parametrizations unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from phenolab.config import ConfigError, MLPSpec, RunSpec, TrainSpec, canonical_json, validate
from phenolab.models import build_model
from phenolab.models.parametrization import bias_stds, layer_multipliers, layer_stds, lr_scales
from phenolab.train import make_optimizer
from phenolab.train.ensemble import ensemble_key

D = 5  # input dimension: finite, never scaled


def spec(**kw) -> MLPSpec:
    return validate(MLPSpec, kw)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------- the table
@pytest.mark.parametrize("n", [64, 256])
@pytest.mark.parametrize("base", [None, 32])
def test_table_per_layer_at_two_widths(n, base):
    """Input, two hidden, output layer: widths [n, 2n, n]; B = base (1 if unset), r = m / B."""
    s = spec(widths=[n, 2 * n, n], parametrization="mup", base_width=base)
    B = 1 if base is None else base
    r1, r2, r3 = n / B, 2 * n / B, n / B
    assert layer_multipliers(s, D) == pytest.approx([1, 1, 1, 1 / r3], rel=1e-15)
    assert layer_stds(s, D) == pytest.approx([D**-0.5, n**-0.5, (2 * n) ** -0.5, B**-0.5], rel=1e-15)
    assert bias_stds(s, D) == pytest.approx([D**-0.5, B**-0.5, B**-0.5, B**-0.5], rel=1e-15)
    sgd = [(r1, r1), (r2 / r1, r2), (r3 / r2, r3), (r3, 1)]  # hidden: fan_out / fan_in ratio (2, then 1/2)
    adam = [(1, 1), (1 / r1, 1), (1 / r2, 1), (1, 1)]
    for optimizer, expected in (("gd", sgd), ("sgd", sgd), ("adam", adam)):
        got = lr_scales(s, D, optimizer)
        assert [pair for layer in got for pair in layer] == pytest.approx(
            [pair for layer in expected for pair in layer], rel=1e-15), optimizer


def _exponent(values_n: list[float], values_4n: list[float]) -> list[float]:
    return [math.log(b / a) / math.log(4) for a, b in zip(values_n, values_4n)]


def test_width_exponents_are_tp5_table3_and_tp4_mup():
    """Effective weights W = mult w: init std ~ n^(0, -1/2, -1), SGD lr on W = mult^2 scale
    ~ n^(1, 0, -1), Adam lr on W = mult scale ~ n^(0, -1, -1) (TP5 Table 3); and in abc-form
    (a = -exp(mult), b = -exp(std), c = -exp(SGD scale)) after the symmetry (a + t, b - t, c - 2t)
    with t = c / 2: a = (-1/2, 0, 1/2), b = 1/2, c = 0 (TP4's muP)."""
    def table(n: int) -> dict[str, list[float]]:
        s = spec(widths=[n, n], parametrization="mup", base_width=16)
        mult, std = layer_multipliers(s, D), layer_stds(s, D)
        sgd = [w for w, _ in lr_scales(s, D, "sgd")]
        adam = [w for w, _ in lr_scales(s, D, "adam")]
        return {"mult": mult, "std": std, "sgd": sgd, "adam": adam,
                "eff_std": [m * x for m, x in zip(mult, std)],
                "eff_sgd": [m * m * x for m, x in zip(mult, sgd)],
                "eff_adam": [m * x for m, x in zip(mult, adam)]}

    small, large = table(128), table(512)
    e = {k: _exponent(small[k], large[k]) for k in small}
    assert e["eff_std"] == pytest.approx([0, -0.5, -1], abs=1e-12)
    assert e["eff_sgd"] == pytest.approx([1, 0, -1], abs=1e-12)
    assert e["eff_adam"] == pytest.approx([0, -1, -1], abs=1e-12)
    a, b, c = ([-x for x in e[k]] for k in ("mult", "std", "sgd"))
    shifted = [(a_ + c_ / 2, b_ - c_ / 2, c_ - c_) for a_, b_, c_ in zip(a, b, c)]
    assert [x for t in shifted for x in t] == pytest.approx([-0.5, 0.5, 0, 0, 0.5, 0, 0.5, 0.5, 0], abs=1e-12)


def test_mup_at_its_base_width_is_the_standard_parametrization():
    kw = {"widths": [48, 48], "activation": "tanh"}
    mup, sp = spec(parametrization="mup", base_width=48, **kw), spec(**kw)
    for fn in (layer_multipliers, layer_stds, bias_stds):
        assert fn(mup, D) == pytest.approx(fn(sp, D), rel=1e-15)
    for optimizer in ("sgd", "adam"):
        assert lr_scales(mup, D, optimizer) == [(1.0, 1.0)] * 3
    x = torch.randn(7, D, generator=gen(1), dtype=torch.float64)
    a = build_model(mup, D, 2, gen(), torch.float64)
    b = build_model(sp, D, 2, gen(), torch.float64)
    torch.testing.assert_close(a(x), b(x), rtol=1e-14, atol=1e-14)


def test_init_std_and_gamma_override_mup_raw_stds_but_not_lr_scales():
    s = spec(widths=[64, 64], parametrization="mup", init={"std": 0.1})
    assert layer_stds(s, D) == [0.1] * 3 and bias_stds(s, D) == [0.1] * 3
    assert lr_scales(s, D, "sgd") == [(64.0, 64.0), (1.0, 64.0), (64.0, 1.0)]
    s = spec(widths=[64, 64], parametrization="mup", init={"bias_std": 0})
    assert bias_stds(s, D) == [0.0] * 3


# ---------------------------------------------------------------- config and optimizer groups
def test_base_width_needs_mup_and_stays_out_of_other_configs_json():
    with pytest.raises(ConfigError, match="base_width is only used by parametrization=mup"):
        validate(RunSpec, {"model": {"width": 8, "base_width": 4}})
    assert "base_width" not in canonical_json(validate(RunSpec, {"model": {"width": 8}}))
    assert '"base_width":4' in canonical_json(validate(RunSpec, {"model": {"width": 8, "parametrization": "mup",
                                                                           "base_width": 4}}))


def test_models_of_different_base_width_do_not_share_an_ensemble():
    runs = [validate(RunSpec, {"model": {"width": 8, "parametrization": "mup", "base_width": b}}) for b in (4, 8)]
    assert ensemble_key(runs[0], 1, 1) != ensemble_key(runs[1], 1, 1)


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam"])
def test_per_layer_lr_reaches_the_torch_optimizer(optimizer):
    model = build_model(spec(widths=[64, 32], parametrization="mup", base_width=16), D, 3, gen())
    train = validate(TrainSpec, {"optimizer": optimizer, "lr": 0.01})
    opt = make_optimizer(model, train)
    assert isinstance(opt, torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)
    lr_of = {id(p): group["lr"] for group in opt.param_groups for p in group["params"]}
    scales = model.lr_scales(optimizer)
    assert len(lr_of) == len(scales) == 6
    for name, p in model.named_parameters():
        assert lr_of[id(p)] == 0.01 * scales[name], name
    expected = {"adam": [1, 1, 1 / 4, 1, 1, 1], "gd": [4, 4, 1 / 2, 2, 2, 1]}[
        "adam" if optimizer == "adam" else "gd"]
    assert [scales[n] for n, _ in model.named_parameters()] == expected
    assert make_optimizer(model, train, lr=0.5).param_groups[0]["lr"] == 0.5 * expected[0]  # restarts


# ------------------------------------------------------------- the other parametrizations
def _manual_forward(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor],
                    mults: list[float]) -> torch.Tensor:
    """h_l = mult_l (h W_l^T) + b_l, tanh on hidden layers (the documented convention)."""
    h = x
    for i, (w, b, c) in enumerate(zip(weights, biases, mults)):
        h = c * (h @ w.T) + b
        if i < len(weights) - 1:
            h = torch.tanh(h)
    return h


EXPECTED_MULTS = {  # input dim 4, widths [16, 25]
    "standard": [1.0, 1.0, 1.0],
    "ntk": [1 / 2, 1 / 4, 1 / 5],
    "mean_field": [1 / 2, 1 / 4, 1 / 25],
}
EXPECTED_STDS = {"standard": [1 / 2, 1 / 4, 1 / 5], "ntk": [1.0] * 3, "mean_field": [1.0] * 3}


@pytest.mark.parametrize("parametrization", ["standard", "ntk", "mean_field"])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_default_parametrizations_unchanged(parametrization, optimizer):
    """Weights, output and one optimizer step of standard/ntk/mean_field, from the formulas."""
    s = spec(widths=[16, 25], activation="tanh", parametrization=parametrization)
    model = build_model(s, 4, 2, gen(3), torch.float64)
    g = gen(3)
    weights, biases = [], []
    for n_in, n_out, std in zip([4, 16, 25], [16, 25, 2], EXPECTED_STDS[parametrization]):
        weights.append(std * torch.randn(n_out, n_in, generator=g, dtype=torch.float64))
        biases.append(std * torch.randn(n_out, generator=g, dtype=torch.float64))
    params = dict(model.named_parameters())
    for i in range(3):
        assert torch.equal(params[f"layers.{i}.weight"].detach(), weights[i])
        assert torch.equal(params[f"layers.{i}.bias"].detach(), biases[i])
    x = torch.randn(9, 4, generator=gen(4), dtype=torch.float64)
    y = torch.randn(9, 2, generator=gen(5), dtype=torch.float64)
    mults = EXPECTED_MULTS[parametrization]
    torch.testing.assert_close(model(x), _manual_forward(x, weights, biases, mults), rtol=1e-14, atol=1e-15)

    train = validate(TrainSpec, {"optimizer": optimizer, "lr": 0.3})
    opt = make_optimizer(model, train)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 0.3
    leaves = [t.clone().requires_grad_(True) for pair in zip(weights, biases) for t in pair]
    loss = ((_manual_forward(x, leaves[0::2], leaves[1::2], mults) - y) ** 2).mean()
    grads = torch.autograd.grad(loss, leaves)
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()
    for (name, p), p0, grad in zip(model.named_parameters(), leaves, grads):
        if optimizer == "gd":
            expected = p0.detach() - 0.3 * grad
        else:  # Adam's first step: m = 0.1 g, v = 0.001 g^2, bias-corrected: g / (|g| + eps)
            expected = p0.detach() - 0.3 * grad / (grad.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_make_optimizer_on_a_plain_model_is_bitwise_the_old_optimizer(optimizer):
    s = spec(widths=[12, 10], activation="tanh", parametrization="ntk")
    a, b = build_model(s, 3, 1, gen()), build_model(s, 3, 1, gen())
    train = validate(TrainSpec, {"optimizer": optimizer, "lr": 0.05, "momentum": 0.9 if optimizer == "sgd" else 0})
    new = make_optimizer(a, train)
    old = (torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(b.parameters(), lr=0.05))
    x = torch.randn(20, 3, generator=gen(1))
    for _ in range(5):
        for model, opt in ((a, new), (b, old)):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
