"""Elementwise activation functions by name, shared by models and teacher targets.

A leaf module (imports nothing of phenolab), so that `models/` and `tasks/` can both use it.
`multiplicity` is the order p of the first non-vanishing derivative at 0 (sigma(0) = 0),
which bounds initial condensation (Zhou et al. 2021, arXiv:2105.11686): at most 2p directions.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def xtanh(x: Tensor) -> Tensor:
    """x tanh(x): multiplicity 2 at the origin."""
    return x * torch.tanh(x)


def x2tanh(x: Tensor) -> Tensor:
    """x^2 tanh(x): multiplicity 3 at the origin."""
    return x * x * torch.tanh(x)


def identity(x: Tensor) -> Tensor:
    """The identity: a linear network (deep linear dynamics, Saxe et al.)."""
    return x


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "sin": torch.sin,
    "xtanh": xtanh,
    "x2tanh": x2tanh,
    "linear": identity,
}

# order of the first non-zero derivative at 0, for activations with sigma(0) = 0 and smooth at 0
MULTIPLICITY: dict[str, int] = {"tanh": 1, "sin": 1, "xtanh": 2, "x2tanh": 3}


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation sigma called `name` (relu, tanh, sigmoid, gelu (exact, erf form), sin,
    xtanh = x tanh x, x2tanh = x^2 tanh x, linear = the identity)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}") from None


def multiplicity(name: str) -> int:
    """p for `name` (tanh 1, xtanh 2, x2tanh 3); ValueError where it is not defined (relu, sigmoid, gelu)."""
    if name not in MULTIPLICITY:
        raise ValueError(f"multiplicity at 0 is defined for {', '.join(MULTIPLICITY)}, not {name!r}")
    return MULTIPLICITY[name]
