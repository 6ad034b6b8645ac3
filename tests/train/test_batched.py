"""The batched trainer of members with their own samples: each member trains as it would alone."""

import numpy as np
import pytest
import torch

from phenolab.config import InitSpec, MLPSpec
from phenolab.models import build_model
from phenolab.train.batched import (
    batched_outputs,
    gauss_newton,
    gradient_descent,
    member_losses,
    member_parameters,
    pad_samples,
    stack_parameters,
)
from phenolab.train.seeding import generator

D, M = 3, 4


def _models(count, std=0.5):
    spec = MLPSpec(width=M, bias=False, activation="tanh", init=InitSpec(std=std))
    return [build_model(spec, D, 1, generator(s, "model"), dtype=torch.float64) for s in range(count)]


def _samples(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    xs = [torch.randn(n, D, generator=g, dtype=torch.float64) for n in sizes]
    return xs, [torch.tanh(x @ w)[:, None] for x in xs]


def _plain_gd(model, x, y, lr, steps):
    """Reference: one member alone, torch.optim.SGD on L = (1/2n) sum e^2."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).sum() / (2 * len(x))
        loss.backward()
        opt.step()
    return model


def test_pad_samples_masks_the_padding():
    xs, ys = _samples([2, 5])
    x, y, mask = pad_samples(xs, ys)
    assert x.shape == (2, 5, D) and y.shape == (2, 5, 1)
    assert mask.sum(1).tolist() == [2, 5]
    assert torch.equal(x[0, :2], xs[0]) and torch.all(x[0, 2:] == 0)


def test_losses_and_outputs_match_each_member_alone():
    models = _models(3)
    xs, ys = _samples([2, 4, 7])
    x, y, mask = pad_samples(xs, ys)
    params = stack_parameters(models)
    losses = member_losses(models[0], params, x, y, mask)
    out = batched_outputs(models[0], params, x)
    for b, model in enumerate(models):
        alone = ((model(xs[b]) - ys[b]) ** 2).sum() / (2 * len(xs[b]))
        assert losses[b].item() == pytest.approx(alone.item(), rel=1e-12)
        assert torch.allclose(out[b, :len(xs[b])], model(xs[b]), atol=1e-14)


def test_gradient_descent_equals_a_loop_of_single_runs():
    models = _models(3)
    xs, ys = _samples([2, 4, 7])
    x, y, mask = pad_samples(xs, ys)
    fit = gradient_descent(models[0], stack_parameters(models), x, y, mask, lr=0.2, steps=150, record_every=50)
    assert fit.steps.tolist() == [0, 50, 100, 150] and fit.history.shape == (4, 3)
    for b, model in enumerate(models):
        alone = _plain_gd(model, xs[b], ys[b], lr=0.2, steps=150)
        for name, p in alone.named_parameters():
            assert torch.allclose(fit.params[name][b], p, atol=1e-12), name
        final = ((alone(xs[b]) - ys[b]) ** 2).sum().item() / (2 * len(xs[b]))
        assert fit.loss[b] == pytest.approx(final, rel=1e-9)
    assert not fit.diverged.any()


def test_a_diverging_member_is_flagged_and_frozen_while_the_others_train():
    models = _models(2, std=[0.5, 0.5])
    xs, ys = _samples([4, 4])
    xs[1] = xs[1] * 1e3  # huge inputs: GD at this lr blows up for member 1 only
    ys[1] = ys[1] * 1e6
    x, y, mask = pad_samples(xs, ys)
    fit = gradient_descent(models[0], stack_parameters(models), x, y, mask, lr=0.2, steps=50, max_loss=1e8)
    assert fit.diverged.tolist() == [False, True]
    assert np.isfinite(fit.loss[0]) and fit.loss[0] < fit.history[0, 0]


def test_gauss_newton_interpolates_to_machine_precision_below_the_parameter_count():
    models = _models(4)
    xs, ys = _samples([3, 5, 8, 10])  # 16 parameters: every member is overparameterized
    x, y, mask = pad_samples(xs, ys)
    start = gradient_descent(models[0], stack_parameters(models), x, y, mask, lr=0.2, steps=300)
    fit = gauss_newton(models[0], start.params, x, y, mask, iterations=40)
    assert (fit.loss < 1e-24).all(), fit.loss
    assert (np.diff(fit.history, axis=0) <= 0).all()  # accepted steps only: the loss never rises
    # the polished parameters interpolate each member's own sample when evaluated alone
    for b, model in enumerate(models):
        out = torch.func.functional_call(model, member_parameters(fit.params, b), (xs[b],))
        assert torch.allclose(out, ys[b], atol=1e-11)


def test_bad_arguments_name_what_is_allowed():
    models = _models(1)
    xs, ys = _samples([3])
    x, y, mask = pad_samples(xs, ys)
    with pytest.raises(ValueError, match="lr > 0"):
        gradient_descent(models[0], stack_parameters(models), x, y, mask, lr=-1.0, steps=3)
    with pytest.raises(ValueError, match="as many targets"):
        pad_samples(xs, [])


def test_hand_gradients_read_any_two_layer_chain():
    """A user's nn.Sequential takes the hand-written two-layer path and agrees with autograd."""
    from torch import nn

    from phenolab.train.batched import _autograd_gradients, two_layer_applies, two_layer_gradients

    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(D, M), nn.Tanh(), nn.Linear(M, 1)).double()
    params = stack_parameters([seq, nn.Sequential(nn.Linear(D, M), nn.Tanh(), nn.Linear(M, 1)).double()])
    assert two_layer_applies(seq, params)
    x, y, mask = pad_samples(*_samples([5, 7]))
    hand, hand_grads = two_layer_gradients(seq, params, x, y, mask)
    auto, auto_grads = _autograd_gradients(seq, params, x, y, mask)
    torch.testing.assert_close(hand, auto)
    for name in auto_grads:
        torch.testing.assert_close(hand_grads[name], auto_grads[name])
