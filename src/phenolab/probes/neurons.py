"""Neurons of a network: effective input weights, biases and output weights.

A two-layer network f(x) = sum_k a_k sigma(w_k . x + b_k) + c has neurons (w_k, b_k, a_k); the
condensation probes (Luo et al., arXiv 2007.07497; Zhou et al., arXiv 2105.11686) measure them.
The model's ``nn.Linear`` layers are read in registration order (for ``nn.Sequential``, the order
of the forward pass); the first is the input layer and, for a two-layer net, the second is the
output layer. A model that declares its layer chain (`phenolab.models.chain`, e.g. phenolab's
`MLP`) has its multipliers applied: w = mult_1 W_1, b = bias_mult_1 b_1, a = scale mult_2 W_2^T
(the same as `MLP.neurons`); for any other module the multipliers are 1.

With ``params`` (a dict name -> tensor, like ``model.state_dict()`` taken at initialization) the
same formulas are applied to those tensors instead of the live parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from torch import Tensor, nn

from phenolab.models.chain import Affine, Scale, layer_chain

__all__ = ["first_layer", "is_two_layer", "linear_layers", "two_layer_neurons"]

SUPPORTED = (
    "supported: phenolab's MLP of depth 1, or any nn.Module with exactly two nn.Linear layers "
    "(input layer, then output layer, e.g. nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k))) "
    "and no other parameters"
)


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The model's ``nn.Linear`` submodules with their qualified names, in registration order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def _tensor(params: Mapping[str, Tensor] | None, prefix: str, attr: str, live: Tensor | None) -> Tensor | None:
    """A detached copy of ``live``, or of the entry ``{prefix}.{attr}`` of ``params`` when given;
    None stays None. Copies, so that a result kept across training steps does not change."""
    if live is None:
        return None
    if params is None:
        return live.detach().clone()
    key = f"{prefix}.{attr}" if prefix else attr
    if key not in params:
        raise KeyError(
            f"params has no entry {key!r}; give a dict like model.state_dict() (keys: {sorted(params)})"
        )
    return params[key].detach().clone()


def _layer(
    layer: tuple[str, nn.Linear], params: Mapping[str, Tensor] | None
) -> tuple[Tensor, Tensor | None]:
    """Raw (weight, bias) of one named Linear, live or from ``params``."""
    name, module = layer
    weight = cast(Tensor, _tensor(params, name, "weight", module.weight))
    return weight, _tensor(params, name, "bias", module.bias)


def _multipliers(model: nn.Module) -> tuple[list[Affine], float] | None:
    """The affine ops of the model's declared layer chain and the product of its output scales,
    or None when the model declares none (then every multiplier is 1)."""
    chain = layer_chain(model)
    if chain is None:
        return None
    scale = 1.0
    for op in chain:
        if isinstance(op, Scale):
            scale *= op.scale
    return [op for op in chain if isinstance(op, Affine)], scale


def _two_layer_problem(model: nn.Module) -> str | None:
    """Why `model` is not a supported two-layer network, or None if it is."""
    layers = linear_layers(model)
    if len(layers) != 2:
        names = ", ".join(repr(name) for name, _ in layers)
        return f"{len(layers)} nn.Linear layers in {type(model).__name__}" + (f" ({names})" if names else "")
    (name_1, first), (name_2, second) = layers
    if first.out_features != second.in_features:
        return (
            f"nn.Linear layers {name_1!r} ({first.out_features} outputs) and {name_2!r} "
            f"({second.in_features} inputs) that do not chain"
        )
    own = {id(p) for _, layer in layers for p in layer.parameters()}
    others = [name for name, p in model.named_parameters() if id(p) not in own]
    return f"parameters outside the two nn.Linear layers: {others}" if others else None


def is_two_layer(model: nn.Module) -> bool:
    """Whether `two_layer_neurons` can read `model` (see the module docstring)."""
    return _two_layer_problem(model) is None


def two_layer_neurons(
    model: nn.Module, params: Mapping[str, Tensor] | None = None
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Effective (w (m, d), b (m,) or None, a (m, k)) with f(x) = sum_k a_k sigma(w_k . x + b_k) + c.

    A model with a declared layer chain (phenolab's MLP): w = mult_1 W_1, b = bias_mult b_1,
    a = scale mult_2 W_2^T, c = scale bias_mult b_2. Other modules: w = W_1, b = b_1, a = W_2^T,
    c = b_2 of their two nn.Linear layers. ``params`` replaces the live parameters (e.g. a state_dict taken
    at initialization). Tensors are detached copies; a ValueError says what was found otherwise.
    """
    problem = _two_layer_problem(model)
    if problem is not None:
        raise ValueError(f"two_layer_neurons needs a two-layer network; found {problem}. {SUPPORTED}")
    layer_1, layer_2 = linear_layers(model)
    w, b = _layer(layer_1, params)
    out_weight, _ = _layer(layer_2, params)
    declared = _multipliers(model)
    if declared is not None:
        (first, second), scale = declared
        b = first.bias_mult * b if b is not None else None
        return first.mult * w, b, scale * second.mult * out_weight.T
    return w, b, out_weight.T


def first_layer(model: nn.Module, params: Mapping[str, Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
    """Effective (w (m, d), b (m,) or None) of the input layer of a network of any depth.

    A model with a declared layer chain (phenolab's MLP): w = mult_1 W_1, b = bias_mult b_1;
    other modules: the weight and bias of their first nn.Linear (registration order). ``params``
    as in `two_layer_neurons`.
    """
    layers = linear_layers(model)
    if not layers:
        raise ValueError(
            f"first_layer found no nn.Linear layer in {type(model).__name__}; supported: phenolab's MLP "
            "or any nn.Module whose first nn.Linear (registration order) is the input layer"
        )
    w, b = _layer(layers[0], params)
    declared = _multipliers(model)
    if declared is not None:
        first = declared[0][0]
        return first.mult * w, first.bias_mult * b if b is not None else None
    return w, b
