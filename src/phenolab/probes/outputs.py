"""Probe `outputs`: the model's outputs on the training inputs, for fit-over-training figures."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from phenolab.probes.evaluate import predict
from phenolab.probes.registry import register_probe
from phenolab.tasks.base import Task


@register_probe("outputs")  # type: ignore[arg-type]
def outputs(model: nn.Module, task: Task, *, max_points: int = 2000) -> dict[str, np.ndarray]:
    """Arrays ``x`` (n, d), ``y`` (targets) and ``y_pred`` (n, k) on the first `max_points` training
    inputs, sorted by x for 1-D inputs so that they plot as curves."""
    x, y = task.x_train[:max_points], task.y_train[:max_points]
    if x.shape[1] == 1:
        order = torch.argsort(x[:, 0])
        x, y = x[order], y[order]
    y_pred = predict(model, x)
    return {"x": x.detach().cpu().numpy(), "y": y.detach().cpu().numpy(), "y_pred": y_pred.cpu().numpy()}
