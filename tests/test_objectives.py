"""Objectives: one convention per name, shared by the trainers and the probes."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phenolab.config import OBJECTIVE_KINDS, ConfigError, KindSpec, MLPSpec, TrainSpec, validate
from phenolab.models import build_model
from phenolab.objectives import Batch, Objective, make_objective, register_objective
from phenolab.tasks.base import Task
from phenolab.train import generator, train


def test_mse_has_no_half_and_half_mse_sums_outputs():
    f = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])
    y = torch.zeros(3, 2)
    assert float(make_objective("mse").on_outputs(f, y)) == pytest.approx((1 + 4 + 0 + 1 + 9 + 0) / 6)
    assert float(make_objective("half_mse").on_outputs(f, y)) == pytest.approx((1 + 4 + 0 + 1 + 9 + 0) / (2 * 3))
    one = torch.tensor([[1.0], [3.0]])
    assert float(make_objective("half_mse").on_outputs(one, torch.zeros(2, 1))) == pytest.approx(
        float(make_objective("mse").on_outputs(one, torch.zeros(2, 1))) / 2)


def test_cross_entropy_reduces_over_the_last_axis():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 7, generator=g)  # (n, T, classes)
    labels = torch.randint(0, 7, (4, 5), generator=g)
    expected = F.cross_entropy(logits.permute(0, 2, 1), labels)  # torch's class axis is 1
    torch.testing.assert_close(make_objective("cross_entropy").on_outputs(logits, labels), expected)
    one_hot = F.one_hot(labels, 7).float()
    torch.testing.assert_close(make_objective("cross_entropy").on_outputs(logits, one_hot), expected)


def test_token_cross_entropy_ignores_and_scores_the_last_position():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 6, generator=g)
    tokens = torch.randint(0, 6, (3, 4), generator=g)
    masked = tokens.clone()
    masked[:, :2] = -100
    spec = validate(TrainSpec, {"loss": {"kind": "token_cross_entropy"}}).loss
    kept = F.cross_entropy(logits[:, 2:].reshape(-1, 6), tokens[:, 2:].reshape(-1))
    torch.testing.assert_close(make_objective(spec).on_outputs(logits, masked), kept)
    last = validate(TrainSpec, {"loss": {"kind": "token_cross_entropy", "last_only": True}}).loss
    torch.testing.assert_close(make_objective(last).on_outputs(logits, tokens),
                               F.cross_entropy(logits[:, -1], tokens[:, -1]))
    with pytest.raises(ValueError, match="logits \\(n, T, V\\) and tokens \\(n, T\\)"):
        make_objective(last).on_outputs(logits[:, 0], tokens)


def test_train_loss_names_and_options_validate_and_keep_their_hash():
    assert TrainSpec().model_dump(mode="json")["loss"] == "mse"  # the bare name: old configs keep their hash
    assert validate(TrainSpec, {"loss": "cross_entropy"}).loss.kind == "cross_entropy"
    with pytest.raises(ConfigError, match="loss.kind: must be one of mse, half_mse, cross_entropy"):
        validate(TrainSpec, {"loss": "l2"})
    with pytest.raises(ConfigError, match="loss.last: unknown key; did you mean 'last_only'"):
        validate(TrainSpec, {"loss": {"kind": "token_cross_entropy", "last": True}})


class SlopeSpec(KindSpec):
    kind: str = "test_slope_residual"


class SlopeResidual(Objective):
    """mean (df/dx - cos x)^2 + f(0)^2: a residual that differentiates the model in its input."""

    name = "test_slope_residual"
    outputs_only = False

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        x = batch.x.detach().requires_grad_(True)
        f = model(x)
        (slope,) = torch.autograd.grad(f.sum(), x, create_graph=True)
        boundary = model(batch.points["origin"])
        return ((slope - torch.cos(x)) ** 2).mean() + (boundary ** 2).mean()

    def on_outputs(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError("a residual needs the model")


def test_a_residual_objective_trains_with_the_plain_loop():
    """The interface admits an objective that differentiates f with respect to its inputs: the
    plain loop fits f' = cos, f(0) = 0, i.e. f = sin."""
    register_objective(SlopeSpec, lambda spec: SlopeResidual())
    try:
        x = torch.linspace(-2, 2, 41, dtype=torch.float64)[:, None]
        origin = torch.zeros(1, 1, dtype=torch.float64)
        task = Task(x_train=x, y_train=torch.zeros_like(x), points={"origin": origin})
        spec = validate(TrainSpec, {"loss": "test_slope_residual", "optimizer": "adam", "lr": 1e-2, "steps": 400,
                                    "dtype": "float64"})
        model = build_model(MLPSpec(width=20), 1, 1, generator(0, "model"), torch.float64)
        objective = make_objective(spec.loss)
        first = float(objective(model, Batch(x, task.y_train, {"origin": origin})))
        result = train(model, task, spec)
        assert result.status == "done" and result.final_loss < first / 50
        with torch.no_grad():
            assert float((model(x) - torch.sin(x)).abs().max()) < 0.1
    finally:
        OBJECTIVE_KINDS._kinds.pop("test_slope_residual")
