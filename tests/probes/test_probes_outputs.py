"""The `outputs` probe returns the model's outputs on the training inputs, sorted by x in 1-D."""

import numpy as np
import torch

from phenolab.probes import run_probe
from phenolab.tasks.base import Task

from fn_model import Fn


def test_outputs_are_sorted_by_x_and_match_the_model():
    x = torch.tensor([[0.5], [-1.0], [2.0]])
    task = Task(x_train=x, y_train=3 * x)
    out = run_probe("outputs", Fn(lambda z: z ** 2), task)
    assert np.allclose(out["x"][:, 0], [-1.0, 0.5, 2.0])
    assert np.allclose(out["y"][:, 0], [-3.0, 1.5, 6.0])
    assert np.allclose(out["y_pred"][:, 0], [1.0, 0.25, 4.0])


def test_outputs_keep_order_in_higher_dimension_and_cap_points():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    task = Task(x_train=x, y_train=x.sum(1, keepdim=True))
    out = run_probe("outputs", Fn(lambda z: z[:, :1]), task, max_points=10)
    assert out["y_pred"].shape == (10, 1) and np.allclose(out["x"], x[:10].numpy())
