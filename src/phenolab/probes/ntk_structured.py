"""The structured NTK methods of `phenolab.probes.ntk`: ``layerwise`` (per-layer Gram sums over a
chain of linear layers and elementwise activations) and ``two_layer`` (the closed form,
`two_layer_ntk`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor, nn
from torch.func import vjp

from phenolab.models.chain import LAYERWISE_SUPPORTED, Affine, Elementwise, Op, Scale, layer_chain
from phenolab.probes.neurons import is_two_layer, two_layer_neurons
from phenolab.probes.ntk_blocks import _contract, _finish, _readout, _weighted

Outputs = Literal["trace", "full", "sum"]


def _two_layer_chain(model: nn.Module, chain: list[Op] | None) -> bool:
    """Whether the chain is Affine, Elementwise, Affine (then an optional Scale) and
    `two_layer_neurons` reads the model."""
    if chain is None or not is_two_layer(model):
        return False
    body = chain[:-1] if isinstance(chain[-1], Scale) else chain
    return [type(op) for op in body] == [Affine, Elementwise, Affine]


@dataclass
class _Pass:
    """Per-Affine inputs h_{l-1} (n, fan_in) and sensitivities delta_l (n, r, fan_out)."""

    inputs: list[Tensor]
    deltas: list[Tensor]


def _value_and_slope(fn: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """(fn(z), fn'(z)) of an elementwise fn: the vector-Jacobian product with a tangent of ones
    (reverse mode; works under ``torch.no_grad``). An in-place module acts on a copy."""
    if getattr(fn, "inplace", False):
        value, pull = vjp(lambda u: fn(u.clone()), z)  # type: ignore[misc]
    else:
        value, pull = vjp(fn, z)  # type: ignore[misc]
    return value, pull(torch.ones_like(value))[0]


def _chain_pass(chain: list[Op], values: Mapping[str, Tensor], x: Tensor, outputs: str) -> _Pass:
    """One forward pass (keeping each Affine's input and each activation's derivative) and one
    backward pass of the readout E (identity, or a row of ones for "sum") through the chain:
    delta = E at the output, delta <- delta * sigma'(z) across an activation, recorded then
    delta <- mult delta W across an Affine."""
    inputs: list[Tensor] = []
    slopes: list[Tensor | float] = []
    h = x
    for op in chain:
        if isinstance(op, Affine):
            inputs.append(h)
            weight = values[f"{op.prefix}.weight"]
            if op.bias:
                h = torch.addmm(values[f"{op.prefix}.bias"], h, weight.T, beta=op.bias_mult, alpha=op.mult)
            else:
                h = _scaled(h @ weight.T, op.mult)
        elif isinstance(op, Elementwise):
            h, slope = _value_and_slope(op.fn, h)
            slopes.append(slope)
        else:
            h = op.scale * h
            slopes.append(op.scale)
    n, k = h.shape
    eye = torch.eye(k, dtype=h.dtype, device=h.device).expand(n, k, k)
    delta = _readout(eye, outputs, 1)
    deltas: list[Tensor] = []
    for op in reversed(chain):
        if isinstance(op, Affine):
            deltas.append(delta)
            if len(deltas) < len(inputs):
                delta = _scaled(delta @ values[f"{op.prefix}.weight"], op.mult)
        else:
            slope = slopes.pop()  # type: ignore[assignment]
            delta = delta * (slope[:, None, :] if isinstance(slope, Tensor) else slope)
    return _Pass(inputs, deltas[::-1])


def _layerwise_method(
    model: nn.Module, x1: Tensor, x2: Tensor, outputs: str, names: list[str], values: Mapping[str, Tensor]
) -> Tensor:
    """Theta = sum_l <delta_l(x), delta_l(x')> (mult_l^2 h_{l-1}(x) . h_{l-1}(x') [W_l trained]
    + bias_mult_l^2 [b_l trained]): the per-layer Gram sum, no Jacobian."""
    chain = layer_chain(model)
    if chain is None:
        raise ValueError(f"method='layerwise' cannot read {type(model).__name__}; {LAYERWISE_SUPPORTED}")
    full = outputs == "full"
    with torch.no_grad():
        first = _chain_pass(chain, values, x1, outputs)
        second = first if x2 is x1 else _chain_pass(chain, values, x2, outputs)
        kernel: Tensor | None = None
        affines = [op for op in chain if isinstance(op, Affine)]
        for op, h1, h2, d1, d2 in zip(affines, first.inputs, second.inputs, first.deltas, second.deltas):
            gram = _input_gram(op, h1, h2, names)
            if gram is None:
                continue
            term = _weighted(_contract(d1, d2, full), gram, full)
            kernel = term if kernel is None else kernel.add_(term)
    if kernel is None:
        raise ValueError(f"none of params {names} belongs to an nn.Linear layer of the chain")
    return _finish(kernel, outputs)


def _input_gram(op: Affine, h1: Tensor, h2: Tensor, names: list[str]) -> Tensor | None:
    """mult^2 h1 h2^T [weight trained] + bias_mult^2 [bias trained]; None if neither is."""
    weight, bias = f"{op.prefix}.weight" in names, op.bias and f"{op.prefix}.bias" in names
    if not (weight or bias):
        return None
    gram = _scaled(h1 @ h2.T, op.mult**2) if weight else h1.new_zeros(len(h1), len(h2))
    return gram.add_(op.bias_mult**2) if bias else gram


def _scaled(fresh: Tensor, factor: float) -> Tensor:
    """factor * fresh, in place (``fresh`` is a new tensor of the caller's)."""
    return fresh if factor == 1.0 else fresh.mul_(factor)


# ----------------------------------------------------------------------------- two-layer
def _two_layer_method(
    model: nn.Module, x1: Tensor, x2: Tensor, outputs: str, names: list[str], values: Mapping[str, Tensor]
) -> Tensor:
    """Closed form of the two-layer NTK in O(n^2 m) (`two_layer_ntk`), on the effective neurons
    of `two_layer_neurons` and the multipliers of the chain."""
    chain = layer_chain(model)
    if chain is None or not _two_layer_chain(model, chain):
        raise ValueError(
            f"method='two_layer' needs a two-layer chain Linear, activation, Linear; "
            f"{type(model).__name__} is not one ({LAYERWISE_SUPPORTED}, with one hidden layer)"
        )
    hidden, act, out = chain[0], chain[1], chain[2]
    assert isinstance(hidden, Affine) and isinstance(act, Elementwise) and isinstance(out, Affine)
    scale = chain[3].scale if len(chain) == 4 and isinstance(chain[3], Scale) else 1.0
    w, b, a = two_layer_neurons(model, values)
    trained = {
        key
        for key, name, present in (
            ("w", f"{hidden.prefix}.weight", True),
            ("b", f"{hidden.prefix}.bias", hidden.bias),
            ("a", f"{out.prefix}.weight", True),
            ("c", f"{out.prefix}.bias", out.bias),
        )
        if present and name in names
    }
    with torch.no_grad():
        return two_layer_ntk(
            x1, x2, w, b, a, act.fn,
            input_mult=hidden.mult, bias_mult=hidden.bias_mult, output_mult=scale * out.mult,
            output_bias_mult=scale * out.bias_mult if out.bias else None,
            outputs=outputs, trained=frozenset(trained),  # type: ignore[arg-type]
        )


def two_layer_ntk(
    x1: Tensor,
    x2: Tensor,
    w: Tensor,
    b: Tensor | None,
    a: Tensor,
    sigma: Callable[[Tensor], Tensor],
    *,
    input_mult: float = 1.0,
    bias_mult: float = 1.0,
    output_mult: float = 1.0,
    output_bias_mult: float | None = 1.0,
    outputs: Outputs = "trace",
    trained: frozenset[str] = frozenset("wbac"),
) -> Tensor:
    """NTK of f_j(x) = sum_k a_kj sigma(w_k . x + b_k) + c_j with respect to the raw parameters,
    where w = input_mult W_1, b = bias_mult b_1, a = output_mult W_2^T, c = output_bias_mult b_2
    (phenolab's MLP: input_mult = mult_1, output_mult = output_scale mult_2; Jacot et al.,
    arXiv:1806.07572):

        Theta_jj'(x, x') = delta_jj' [output_mult^2 sum_k sigma(z_k) sigma(z_k') + output_bias_mult^2]
                           + sum_k a_kj a_kj' sigma'(z_k) sigma'(z_k') (input_mult^2 x . x' + bias_mult^2),

    z_k = w_k . x + b_k; ``b=None`` / ``output_bias_mult=None``: no such bias. ``trained``: the
    differentiated parameters among "w", "b", "a", "c" (W_1, b_1, W_2, b_2). ``outputs`` as in
    `empirical_ntk`. Cost O(n^2 m k) for "trace" and "sum", O(n^2 m k^2) for "full".
    """
    full = outputs == "full"
    s1, d1 = _value_and_slope(sigma, x1 @ w.T if b is None else torch.addmm(b, x1, w.T))
    s2, d2 = (s1, d1) if x2 is x1 else _value_and_slope(sigma, x2 @ w.T if b is None else torch.addmm(b, x2, w.T))
    k = a.shape[1]
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    readout = eye.sum(0, keepdim=True) if outputs == "sum" else eye  # (r, k)
    a_read = a @ readout.T  # (m, r)
    r = a_read.shape[1]
    kernel = x1.new_zeros((len(x1), r, len(x2), r) if full else (len(x1), len(x2)))
    has_b = b is not None and "b" in trained
    if "w" in trained or has_b:
        gram = input_mult**2 * (x1 @ x2.T) if "w" in trained else x1.new_zeros(len(x1), len(x2))
        gram = gram + bias_mult**2 if has_b else gram
        # sensitivities of the hidden pre-activations a_kr sigma'(z_k): (n, r, m)
        block = _contract(d1[:, None, :] * a_read.T, d2[:, None, :] * a_read.T, full)
        kernel = kernel + _weighted(block, gram, full)
    out_gram = x1.new_zeros(len(x1), len(x2))
    if "a" in trained:
        out_gram = out_gram + output_mult**2 * (s1 @ s2.T)
    if "c" in trained and output_bias_mult is not None:
        out_gram = out_gram + output_bias_mult**2
    mix = readout @ readout.T  # delta_jj' seen through the readout, (r, r)
    kernel = kernel + (mix[None, :, None, :] * out_gram[:, None, :, None] if full else mix.trace() * out_gram)
    return _finish(kernel, outputs)
