"""The weight_moments probe: wbar and M of the input weights, and their change from a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes.moments import weight_moments
from phenolab.probes.registry import needs_reference, run_probe
from phenolab.tasks.base import Task

TASK = Task(x_train=torch.zeros(3, 2), y_train=torch.zeros(3, 1))


def test_moments_of_a_sequential_net_and_their_change():
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Tanh(), nn.Linear(3, 1))
    w = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.0, 1.0]])
    with torch.no_grad():
        model[0].weight.copy_(w)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    out = run_probe("weight_moments", model, TASK, reference=reference)
    w1 = (w + 1).numpy().astype(np.float64)
    np.testing.assert_allclose(out["mean"], w1.mean(0))
    np.testing.assert_allclose(out["second_moment"], w1.T @ w1 / 3)
    np.testing.assert_allclose(out["mean_change"], np.ones(2))
    np.testing.assert_allclose(out["second_moment_change"], w1.T @ w1 / 3 - w.numpy().T @ w.numpy() / 3, rtol=1e-6)
    assert out["trace"] == pytest.approx(np.trace(w1.T @ w1 / 3) / 2)
    assert needs_reference("weight_moments")


def test_moments_use_the_effective_weights_of_phenolabs_mlp():
    model = build_model(MLPSpec(width=8, parametrization="ntk", bias=False), 4, 1, torch.Generator().manual_seed(0),
                        dtype=torch.float64)
    out = run_probe("weight_moments", model, TASK)
    w = model.layers[0].weight.detach().numpy() / 2.0  # ntk: mult_1 = 1/sqrt(4)
    np.testing.assert_allclose(out["second_moment"], w.T @ w / 8)
    assert "mean_change" not in out  # no reference given
    with pytest.raises(ValueError, match="weight matrix"):
        weight_moments(np.zeros((0, 3)))
