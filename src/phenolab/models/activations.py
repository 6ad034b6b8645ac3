"""Elementwise activation functions by name."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "sin": torch.sin,
}


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation sigma called `name` (relu, tanh, sigmoid, gelu (exact, erf form) or sin)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}") from None
