"""fresh_loss: the Monte-Carlo population MSE on fresh inputs, with its standard error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from phenolab.config import RunSpec, validate
from phenolab.probes.registry import run_probe
from phenolab.tasks import make_task
from phenolab.tasks.base import Task


class Zero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x[:, :1] * 0


def test_fresh_loss_of_the_zero_function_is_the_targets_second_moment():
    """E y^2 = (3/4) (|beta|^2 / d)^2 for y = (1/2)(beta . x)^2, x ~ N(0, I/d)."""
    spec = validate(RunSpec, {"data": {"kind": "quadratic_teacher", "input_dim": 6, "n_train": 10, "seed": 0}})
    task = make_task(spec.data, 0, dtype=torch.float64)
    out = run_probe("fresh_loss", Zero(), task, points=40000, seed=3)
    b2 = float((task.info["beta"] ** 2).sum())
    exact = 0.75 * (b2 / 6) ** 2
    assert abs(out["mse"] - exact) < 4 * out["se"]
    assert 0.01 < out["se"] / out["mse"] < 0.05  # ~ sqrt(32 / n) for a squared chi^2_1
    assert run_probe("fresh_loss", Zero(), task, points=40000, seed=3) == out  # the same fresh points
    assert run_probe("fresh_loss", Zero(), task, points=40000, seed=4)["mse"] != out["mse"]


def test_fresh_loss_needs_a_task_that_samples():
    with pytest.raises(ValueError, match="Task.sample"):
        run_probe("fresh_loss", Zero(), Task(x_train=torch.zeros(2, 1), y_train=torch.zeros(2, 1)))
    spec = validate(RunSpec, {"data": {"kind": "quadratic_teacher", "input_dim": 2, "n_train": 4}})
    with pytest.raises(ValueError, match="points"):
        run_probe("fresh_loss", Zero(), make_task(spec.data, 0), points=1)
