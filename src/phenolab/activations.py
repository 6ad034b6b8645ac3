"""Elementwise activation functions by name, shared by models and teacher targets.

A leaf module (imports nothing of phenolab), so that `models/` and `tasks/` can both use it.
`multiplicity` is the order p of the first non-vanishing derivative at 0 (sigma(0) = 0),
which bounds initial condensation (Zhou et al. 2021, arXiv:2105.11686): at most 2p directions.
"""

from __future__ import annotations

import math
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


class Quadratic:
    """sigma(h) = h + (c/2) h^2: the committee machine's activation phi of Kumar et al. 2023
    (arXiv:2310.06110, section 5, c = epsilon), whose NTK's alignment with a quadratic target grows
    with c. A class rather than a closure so that networks holding it can be pickled."""

    def __init__(self, c: float = 1.0) -> None:
        if not math.isfinite(c):
            raise ValueError(f"the quadratic activation's parameter must be finite, got {c}")
        self.c = float(c)

    def __call__(self, x: Tensor) -> Tensor:
        return x + (0.5 * self.c) * (x * x)

    def __repr__(self) -> str:
        return f"Quadratic(c={self.c:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quadratic) and other.c == self.c

    def __hash__(self) -> int:
        return hash(("quadratic", self.c))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "sin": torch.sin,
    "xtanh": xtanh,
    "x2tanh": x2tanh,
    "linear": identity,
    "quadratic": Quadratic(),
}

# activations with a parameter (`get_activation(name, param)`): name -> its class
PARAMETRIZED: dict[str, Callable[[float], Callable[[Tensor], Tensor]]] = {"quadratic": Quadratic}

# order of the first non-zero derivative at 0, for activations with sigma(0) = 0 and smooth at 0
MULTIPLICITY: dict[str, int] = {"tanh": 1, "sin": 1, "xtanh": 2, "x2tanh": 3, "quadratic": 1}


def get_activation(name: str, param: float | None = None) -> Callable[[Tensor], Tensor]:
    """The activation sigma called `name` (relu, tanh, sigmoid, gelu (exact, erf form), sin,
    xtanh = x tanh x, x2tanh = x^2 tanh x, linear = the identity, quadratic = h + (c/2) h^2).

    ``param``: the parameter of a parametrized activation (quadratic: c, default 1); None takes
    the default. A ValueError for a parameter given to an activation without one."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    if param is None:
        return ACTIVATIONS[name]
    if name not in PARAMETRIZED:
        raise ValueError(f"activation {name!r} takes no parameter, got {param}; "
                         f"parametrized activations: {', '.join(PARAMETRIZED)}")
    return PARAMETRIZED[name](param)


def multiplicity(name: str) -> int:
    """p for `name` (tanh 1, xtanh 2, x2tanh 3); ValueError where it is not defined (relu, sigmoid, gelu)."""
    if name not in MULTIPLICITY:
        raise ValueError(f"multiplicity at 0 is defined for {', '.join(MULTIPLICITY)}, not {name!r}")
    return MULTIPLICITY[name]
