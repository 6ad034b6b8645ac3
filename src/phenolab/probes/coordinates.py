"""The coordinate check of Tensor Programs V (Yang et al., arXiv:2203.03466, Sec. 3 and the mup
package's coord_check): the typical size of every layer's coordinates, and of their change
since initialization, measured at several widths.

For a network with layers l = 0..L (phenolab's `MLP`: L hidden layers, then the output) on the
inputs x_1..x_n of the task, h_l(x) in R^{m_l} is layer l's pre-activation (an `nn.Linear`'s
output; for phenolab's `MLP` mult_l (W_l h) + b_l of the hidden layers and the network output f
for the last), and

    rms_l   = sqrt( (1 / (n m_l)) sum_{i,k} h_l(x_i)_k^2 ),
    delta_l = sqrt( (1 / (n m_l)) sum_{i,k} (h_l(x_i; theta)_k - h_l(x_i; theta_0)_k)^2 ),

theta_0 the reference parameters (the initialization). After a few steps, delta_l is flat in
the width under muP (every layer learns maximally, Yang & Hu arXiv:2011.14522), shrinks like
m^-1/2 in the hidden layers under the NTK parametrization (the kernel regime) and grows with
m under the standard parametrization at a fixed learning rate (the output blows up).

Probes: ``coord`` (``rms_0..rms_L`` and the array ``rms``) and ``coord_change``
(``delta_0..delta_L`` and the array ``delta``; needs a reference).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from phenolab.probes.evaluate import evaluating, to_model_input
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

Split = Literal["train", "test"]


class _Preactivations(nn.Module):
    """Wraps a model that has ``preactivations(x) -> list[Tensor]`` so that its forward returns
    them (so that `functional_call` can evaluate them at other parameters)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(cast(Any, self.model).preactivations(x))


def layer_values(model: nn.Module, x: Tensor, params: dict[str, Tensor] | None = None) -> list[Tensor]:
    """Every layer's pre-activation on `x` (detached), at the model's parameters or at `params`.

    A model with a ``preactivations(x)`` method (phenolab's `MLP`) gives its own list; any other
    model gives the outputs of its `nn.Linear` modules in the order they run (forward hooks).
    Runs in eval mode without gradients; each submodule's ``training`` flag is put back.
    """
    x = to_model_input(model, x)
    with evaluating(model):
        if callable(getattr(model, "preactivations", None)):
            return _own_preactivations(model, x, params)
        return _linear_outputs(model, x, params)


def _own_preactivations(model: nn.Module, x: Tensor, params: dict[str, Tensor] | None) -> list[Tensor]:
    if params is None:
        return [h.detach() for h in cast(Any, model).preactivations(x)]
    wrapper = _Preactivations(model)
    return [h.detach() for h in functional_call(wrapper, {f"model.{k}": v for k, v in params.items()}, (x,))]


def _linear_outputs(model: nn.Module, x: Tensor, params: dict[str, Tensor] | None) -> list[Tensor]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"the coordinate probes need nn.Linear layers or a preactivations(x) method; "
                         f"{type(model).__name__} has neither")
    values: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _in, out: values.append(out.detach())) for m in linears]
    try:
        if params is None:
            model(x)
        else:
            functional_call(model, params, (x,))
    finally:
        for hook in hooks:
            hook.remove()
    return values


def rms(values: Tensor) -> float:
    """sqrt(mean of values^2) over every entry, in float64."""
    return float(values.detach().to(torch.float64).pow(2).mean().sqrt())


def _inputs(task: Task, split: Split) -> Tensor:
    if split == "train":
        return task.x_train
    if split == "test" and task.x_test is not None:
        return task.x_test
    raise ValueError(f"split must be 'train' or 'test' (a task with a test set), got {split!r}")


def _named(prefix: str, values: list[float]) -> ProbeResult:
    out: ProbeResult = {f"{prefix}_{i}": v for i, v in enumerate(values)}
    out[prefix] = np.asarray(values, dtype=np.float64)
    return out


@register_probe("coord")
def coord_probe(model: nn.Module, task: Task, *, split: Split = "train") -> ProbeResult:
    """``rms_l`` = RMS of layer l's pre-activation over the task's inputs and the layer's units
    (l = 0..L, the last = the network output for phenolab's `MLP`), and the array ``rms``."""
    return _named("rms", [rms(h) for h in layer_values(model, _inputs(task, split))])


@register_probe("coord_change", needs_reference=True)
def coord_change_probe(model: nn.Module, task: Task, *, reference: dict[str, Tensor] | None = None,
                       split: Split = "train") -> ProbeResult:
    """``delta_l`` = RMS of h_l(theta) - h_l(theta_0) over the task's inputs and the layer's units,
    theta_0 = ``reference`` (a state dict, e.g. at initialization), and the array ``delta``."""
    if reference is None:
        raise ValueError("the coord_change probe needs reference=<a state_dict of the model at initialization>")
    x = _inputs(task, split)
    now = layer_values(model, x)
    then = layer_values(model, x, reference)
    if len(now) != len(then):
        raise ValueError(f"the model ran {len(now)} layers at its parameters but {len(then)} at the reference")
    return _named("delta", [rms(a - b) for a, b in zip(now, then)])
