"""A network as a chain of affine maps, elementwise activations and an output scale.

The chain is a capability: a model declares it with a method ``layer_chain() -> list[Op]``
(phenolab's `MLP` does), and a user's ``nn.Sequential`` of ``nn.Linear`` layers and elementwise
activations is read as one. Structured probes use it instead of type checks: the layerwise and
two-layer NTK (`phenolab.probes.ntk`), the effective neurons (`phenolab.probes.neurons`), the
hand-written two-layer gradients (`phenolab.train.batched`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, Union

from torch import Tensor, nn

ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LogSigmoid, nn.Tanhshrink,
)
SKIPPED = (nn.Identity, nn.Dropout)  # identities in eval mode
LAYERWISE_SUPPORTED = (
    "supported: phenolab's MLP, or an nn.Sequential (nested ones too) of nn.Linear layers and "
    f"elementwise activations ({', '.join(t.__name__ for t in ELEMENTWISE)}; Identity and Dropout "
    "are skipped) with no other parameters"
)


# ----------------------------------------------------------------------------- structure
@dataclass(frozen=True)
class Affine:
    """z = mult * W h + bias_mult * b of the nn.Linear named ``prefix`` (b only if ``bias``)."""

    prefix: str
    mult: float
    bias_mult: float
    bias: bool


@dataclass(frozen=True)
class Elementwise:
    """h = fn(z) elementwise; fn'(z) is the vector-Jacobian product with a tangent of ones."""

    fn: Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Scale:
    """f = scale * z (phenolab's ``output_scale``)."""

    scale: float


Op = Union[Affine, Elementwise, Scale]


def layer_chain(model: nn.Module) -> list[Op] | None:
    """The model as a chain of `Affine`, `Elementwise` and `Scale` ops, or None if it is none.

    A model that declares the capability has a method ``layer_chain()`` (phenolab's `MLP`: layer l
    is Affine(mult_l, BIAS_MULTIPLIER), hidden layers are followed by its activation, the output by
    Scale(output_scale)). An ``nn.Sequential``: its nn.Linear layers (mult 1) and elementwise
    activations in order (see ``LAYERWISE_SUPPORTED``). Any other module: None.
    """
    declared = getattr(model, "layer_chain", None)
    if callable(declared):
        return declared()
    if isinstance(model, nn.Sequential):
        return _sequential_chain(model)
    return None


def _sequential_chain(model: nn.Sequential) -> list[Op] | None:
    ops: list[Op] = []
    leaves = list(_leaves(model, ""))
    if len({id(module) for _, module in leaves}) < len(leaves):
        return None  # a module used twice (tied weights): left to the generic methods
    for name, module in leaves:
        if isinstance(module, nn.Linear):
            ops.append(Affine(name, 1.0, 1.0, module.bias is not None))
        elif isinstance(module, ELEMENTWISE):
            ops.append(Elementwise(module))
        elif not isinstance(module, SKIPPED):
            return None
    if not any(isinstance(op, Affine) for op in ops):
        return None
    covered = {f"{op.prefix}.{attr}" for op in ops if isinstance(op, Affine) for attr in ("weight", "bias")}
    return ops if all(name in covered for name, _ in model.named_parameters()) else None


def _leaves(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    """Children of nested nn.Sequential containers in forward order, with qualified names,
    repeats included (``named_children`` would drop a module used twice)."""
    for name, child in module._modules.items():
        if child is None:
            continue
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, full)
        else:
            yield full, child
