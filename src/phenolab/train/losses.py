"""Training losses. MSE has no 1/2: L = mean over samples and outputs of (f - y)^2."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((f - y)^2); integer labels are compared as one-hot vectors."""
    if not target.is_floating_point():
        target = F.one_hot(target, output.shape[-1]).to(output.dtype)
    return ((output - target.reshape(output.shape)) ** 2).mean()


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy on logits; one-hot targets are turned into labels by argmax."""
    if target.is_floating_point():
        target = target.argmax(dim=-1)
    return F.cross_entropy(output, target)


def get_loss(name: str) -> LossFn:
    losses = {"mse": mse, "cross_entropy": cross_entropy}
    if name not in losses:
        raise ValueError(f"train.loss: must be one of {', '.join(losses)}, got {name!r}")
    return losses[name]
