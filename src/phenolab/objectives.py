"""Objectives: what training minimizes, as a map (model, batch) -> scalar.

Every trainer and the probes that differentiate a loss (Hessian, loss) use these, so that one
convention holds everywhere:

- ``mse``: L = 1/(n k) sum_i sum_j (f_ij - y_ij)^2, the mean over samples and outputs, **no 1/2**
  (phenolab's training loss since the beginning; integer labels are compared as one-hot vectors);
- ``half_mse``: L = 1/(2 n) sum_i ||f_i - y_i||^2, the convention of the theory papers (gradient
  flow dtheta/dt = -grad L with the NTK as written there; the recovery and embedding experiments);
  for one output it is ``mse`` / 2;
- ``cross_entropy``: the mean over samples of -log softmax(f_i)[c_i], the class axis the **last**
  axis of the output (any leading shape); one-hot (float) targets become labels by argmax;
- ``token_cross_entropy``: logits (n, T, V) against tokens (n, T), positions whose target is
  ``ignore_index`` left out of the mean; ``last_only`` scores only the last position (the answer
  token of an anchor-function sequence).

An objective that is defined on the outputs alone (``on_outputs``) can be evaluated by the stacked
ensemble paths, which compute outputs themselves; one that needs the model (a PDE residual that
differentiates f with respect to its inputs, `Objective.__call__` overridden) sets
``outputs_only = False`` and trains with the plain loop. The spec side (names and options in
``train.loss``) is `phenolab.config.ObjectiveSpec`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phenolab.config import (
    OBJECTIVE_KINDS,
    ConfigError,
    CrossEntropySpec,
    HalfMSESpec,
    KindSpec,
    MSESpec,
    TokenCrossEntropySpec,
)


@dataclass(frozen=True)
class Batch:
    """What an objective sees: inputs, targets, and named extra point sets (a PDE's boundary)."""

    x: Tensor
    y: Tensor
    points: Mapping[str, Tensor] = field(default_factory=dict)


class Objective(ABC):
    """A scalar to minimize: ``objective(model, batch)``. Objectives on outputs implement
    `on_outputs(output, target)`; ``outputs_only`` says that this is all they need."""

    name: ClassVar[str]
    outputs_only: ClassVar[bool] = True

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        return self.on_outputs(model(batch.x), batch.y)

    @abstractmethod
    def on_outputs(self, output: Tensor, target: Tensor) -> Tensor:
        """The objective of outputs `output` against `target` (a 0-d tensor)."""


def _one_hot_like(output: Tensor, target: Tensor) -> Tensor:
    if not target.is_floating_point():
        return F.one_hot(target.long(), output.shape[-1]).to(output.dtype)
    return target.reshape(output.shape)


class MSE(Objective):
    """1/(n k) sum (f - y)^2, no 1/2 (see the module docstring)."""

    name = "mse"

    def on_outputs(self, output: Tensor, target: Tensor) -> Tensor:
        return ((output - _one_hot_like(output, target)) ** 2).mean()


class HalfMSE(Objective):
    """1/(2 n) sum_i ||f_i - y_i||^2 (see the module docstring)."""

    name = "half_mse"

    def on_outputs(self, output: Tensor, target: Tensor) -> Tensor:
        out = output.reshape(output.shape[0], -1)
        diff = out - _one_hot_like(output, target).reshape(out.shape)
        return (diff ** 2).sum() / (2 * out.shape[0])


class CrossEntropy(Objective):
    """Mean softmax cross-entropy, classes on the last axis of the output."""

    name = "cross_entropy"

    def on_outputs(self, output: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            target = target.argmax(dim=-1)
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1).long())


@dataclass(frozen=True)
class TokenCrossEntropy(Objective):
    """Cross-entropy of logits (n, T, V) against tokens (n, T); see the module docstring."""

    ignore_index: int = -100
    last_only: bool = False
    name: ClassVar[str] = "token_cross_entropy"

    def on_outputs(self, output: Tensor, target: Tensor) -> Tensor:
        if output.ndim != 3 or target.shape != output.shape[:2]:
            raise ValueError(f"token_cross_entropy needs logits (n, T, V) and tokens (n, T), got "
                             f"{tuple(output.shape)} and {tuple(target.shape)}")
        if self.last_only:
            output, target = output[:, -1:], target[:, -1:]
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1).long(),
                               ignore_index=self.ignore_index)


_FACTORIES: dict[str, Callable[[Any], Objective]] = {
    MSESpec.model_fields["kind"].default: lambda spec: MSE(),
    HalfMSESpec.model_fields["kind"].default: lambda spec: HalfMSE(),
    CrossEntropySpec.model_fields["kind"].default: lambda spec: CrossEntropy(),
    TokenCrossEntropySpec.model_fields["kind"].default: lambda spec: TokenCrossEntropy(spec.ignore_index,
                                                                                       spec.last_only),
}


def register_objective(spec: type[KindSpec], factory: Callable[[Any], Objective]) -> None:
    """Register an objective kind: its spec class (``train.loss: {kind: NAME, ...}``) and a
    factory spec -> `Objective` (e.g. a PDE residual from its own module)."""
    OBJECTIVE_KINDS.register(spec)
    _FACTORIES[str(spec.model_fields["kind"].default)] = factory


def make_objective(spec: KindSpec | str) -> Objective:
    """The `Objective` of a ``train.loss`` spec (or a bare name with default options)."""
    if isinstance(spec, str):
        spec = OBJECTIVE_KINDS.get(spec).model_validate({})  # the kind's defaults
    if spec.kind not in _FACTORIES:
        raise ConfigError([f"train.loss: must be one of {', '.join(_FACTORIES)}, got {spec.kind!r}"])
    return _FACTORIES[spec.kind](spec)


def objective_on(output: Tensor, target: Tensor, name: str | KindSpec) -> Tensor:
    """``make_objective(name).on_outputs(output, target)`` without a gradient: for probes."""
    with torch.no_grad():
        return make_objective(name).on_outputs(output, target)


def mse(output: Tensor, target: Tensor) -> Tensor:
    """The ``mse`` objective on outputs: 1/(n k) sum (f - y)^2, no 1/2."""
    return MSE().on_outputs(output, target)


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """The ``cross_entropy`` objective on outputs (classes on the last axis)."""
    return CrossEntropy().on_outputs(output, target)
