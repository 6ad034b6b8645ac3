"""Critical embedding and reduction of two-layer networks (embedding principle).

A two-layer MLP (depth 1) is f(x) = sum_k a_k sigma(w_k . x + b_k) + c in EFFECTIVE weights
(`MLP.neurons`: w = mult_1 W_1, b = BIAS_MULTIPLIER b_1, a = output_scale mult_2 W_2^T,
c = output_scale BIAS_MULTIPLIER b_2). Every operator here reads the effective neurons, changes
the width, and builds a NEW MLP of the same spec (only the width differs) whose raw weights give
those effective weights under the new width's multipliers (NTK's 1/sqrt(m), mean-field's 1/m,
muP's B/m on the output layer), so the output function is the same for every parametrization.
The input model is never modified.

Operators (Zhang, Zhang, Luo, Xu, arXiv 2105.14573 and 2111.15527; Zhang, Zhang, Luo, arXiv
2405.17501):

* `split_neuron` (splitting embedding T_delta): neuron j -> two copies with the same (w_j, b_j)
  and output weights delta a_j (at j) and (1 - delta) a_j (appended, index m). Critical for ANY
  data, loss and smooth activation: the copies' gradients are delta and 1 - delta times the
  original neuron's, and the output-weight gradients equal the original's.
* `null_embedding`: a neuron with a = 0. With w = 0 (and b = 0) it is critical for any data
  when sigma(0) = 0 (dL/da_new ~ sigma(0), dL/dw_new ~ a_new = 0). With sigma(0) != 0 it is
  critical only where mean(e) sigma(0) = 0, e.g. at a critical point of a net with an output
  bias (there the residuals e average to 0). With w != 0 it is sample-dependent: critical only
  if (1/n) sum_i e_i sigma(w . x_i + b) = 0.
* `critical_embedding`: splits, then zero-input null neurons; critical for any data whenever
  each null neuron is (sigma(0) = 0, or the residual mean vanishes as above).
* `reduce_network` (critical reduction, the inverse): merge neurons with equal (w, b) (and,
  for an odd activation, with (w, b) = -(w', b'), since a sigma(-z) = -a sigma(z)), drop
  neurons with a = 0 and, when sigma(0) = 0, neurons with (w, b) = 0. Same output function,
  narrower net.

Not supported (ValueError): nets deeper than one hidden layer, ``fixed_readout`` (every output
weight is one frozen value, so delta a_j or a = 0 cannot be represented) and ``centered`` nets
(their output subtracts the initial net's, which would need its own embedding). An
``init.antisymmetric`` spec is copied with that flag off: it describes an initialization, and
the embedded weights are not antisymmetric (nor, in general, of even width).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from phenolab.config import MLPSpec
from phenolab.models.mlp import MLP
from phenolab.models.mlp import build_mlp as build_model
from phenolab.models.parametrization import BIAS_MULTIPLIER

__all__ = [
    "activation_symmetry",
    "critical_embedding",
    "merge_condensed",
    "null_embedding",
    "reduce_network",
    "reduce_neurons",
    "split_neuron",
    "two_layer_from_neurons",
]


def activation_symmetry(sigma) -> tuple[bool, bool]:
    """(odd, zero_at_zero) of an elementwise activation, checked numerically in float64 on
    [-4, 4]: odd when sigma(-z) = -sigma(z) (tanh, sin, x^2 tanh x, linear), zero_at_zero when
    sigma(0) = 0 (all built-ins but sigmoid)."""
    z = torch.linspace(-4.0, 4.0, 161, dtype=torch.float64)
    s, s_neg = sigma(z), sigma(-z)
    odd = bool(torch.allclose(s_neg, -s, rtol=1e-12, atol=1e-15))
    zero = bool(sigma(torch.zeros(1, dtype=torch.float64)).abs().item() <= 1e-15)
    return odd, zero


def _with_width(spec: MLPSpec, m: int) -> MLPSpec:
    """`spec` with hidden width m (``width`` or ``widths``, as the spec gives it); antisymmetric init off."""
    if len(spec.hidden_widths) != 1:
        raise ValueError(f"embedding operators need a two-layer net (depth 1), got hidden widths {spec.hidden_widths}")
    update: dict = {"widths": [m]} if spec.widths is not None else {"width": m}
    if spec.init.antisymmetric:
        update["init"] = spec.init.model_copy(update={"antisymmetric": False})
    return spec.model_copy(update=update)


def _check_spec(spec: MLPSpec) -> None:
    if spec.fixed_readout is not None:
        raise ValueError(f"model.fixed_readout={spec.fixed_readout}: every output weight is that frozen value, so "
                         "an embedding or reduction (which changes output weights) cannot be represented")
    if spec.centered:
        raise ValueError("model.centered=true: the output subtracts the initial network's, which the operator "
                         "would have to embed as well; not supported")


def two_layer_from_neurons(
    spec: MLPSpec,
    w: Tensor,
    b: Tensor | None,
    a: Tensor,
    c: Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> MLP:
    """The two-layer MLP of `spec` (width set to m = len(w)) with effective neurons
    f(x) = sum_k a_k sigma(w_k . x + b_k) + c.

    w (m, d); b (m,) or None (zeros when the spec has biases; a ValueError for non-zero b
    without them); a (m, k) or (m,) for one output; c (k,) the output bias (None: zeros; a
    ValueError for non-zero c without an output bias). Raw weights are the effective ones
    divided by the new width's multipliers (and output_scale). dtype: default w's; device: w's.
    """
    _check_spec(spec)
    w = torch.as_tensor(w)
    dtype = dtype or (w.dtype if w.is_floating_point() else torch.float64)
    w = w.to(dtype)
    a = torch.as_tensor(a, dtype=dtype, device=w.device)
    a = a[:, None] if a.ndim == 1 else a
    if w.ndim != 2 or a.ndim != 2 or len(a) != len(w) or len(w) == 0:
        raise ValueError(f"need w (m, d) and a (m, k) or (m,) with the same m >= 1, got w {tuple(w.shape)}, "
                         f"a {tuple(a.shape)}")
    (m, d), k = w.shape, a.shape[1]
    new_spec = _with_width(spec, m)
    out_bias = spec.bias if spec.output_bias is None else spec.output_bias
    for name, value, allowed, shape in (("b", b, spec.bias, (m,)), ("c", c, out_bias, (k,))):
        if value is None:
            continue
        if tuple(torch.as_tensor(value).shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(torch.as_tensor(value).shape)}")
        if not allowed and bool(torch.as_tensor(value).ne(0).any()):
            raise ValueError(f"{name} is non-zero but the spec has no {'output ' if name == 'c' else ''}bias "
                             f"(model.bias={spec.bias}, model.output_bias={spec.output_bias})")
    model = build_model(new_spec, d, k, torch.Generator().manual_seed(0), dtype).to(w.device)
    hidden, out = model.layers
    mult_1, mult_2 = model.multipliers
    scale = model.output_scale
    with torch.no_grad():
        hidden.weight.copy_(w / mult_1)
        out.weight.copy_(a.T / (scale * mult_2))
        for bias, value, factor in ((hidden.bias, b, BIAS_MULTIPLIER), (out.bias, c, scale * BIAS_MULTIPLIER)):
            if bias is not None:
                bias.copy_(torch.zeros_like(bias) if value is None else torch.as_tensor(value, dtype=dtype) / factor)
    return model


def _neurons(model: MLP) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """Effective (w, b, a (m, k), c or None) of a two-layer MLP, after checking it is supported."""
    if not isinstance(model, MLP):
        raise ValueError(f"embedding operators act on phenolab's MLP, got {type(model).__name__}")
    _check_spec(model.spec)
    w, b, a = model.neurons()
    out = model.layers[-1]
    c = model.output_scale * BIAS_MULTIPLIER * out.bias.detach() if out.bias is not None else None
    return w.clone(), None if b is None else b.clone(), a.clone(), c


def split_neuron(model: MLP, j: int, delta: float) -> MLP:
    """Splitting embedding T_delta: neuron j keeps (w_j, b_j) with output weight delta a_j; a copy
    (w_j, b_j, (1 - delta) a_j) is appended at index m. Same output function; critical points
    map to critical points for any data. delta may be any real number (0 or 1 give a null copy)."""
    w, b, a, c = _neurons(model)
    m = len(w)
    if not -m <= j < m:
        raise ValueError(f"j: neuron index must be in [0, {m}), got {j}")
    delta = float(delta)
    if not math.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta}")
    j %= m
    a_j = a[j].clone()
    a[j] = delta * a_j
    w = torch.cat([w, w[j:j + 1]])
    b = None if b is None else torch.cat([b, b[j:j + 1]])
    a = torch.cat([a, ((1.0 - delta) * a_j)[None]])
    return two_layer_from_neurons(model.spec, w, b, a, c)


def null_embedding(model: MLP, w: Tensor | None = None, b: float | None = None) -> MLP:
    """Append a neuron with output weight 0 and input weight `w` (default 0) and bias `b`
    (default 0; only for a net with biases). Same output function; critical for any data with
    w = 0, b = 0 and sigma(0) = 0, sample-dependent otherwise (see the module docstring)."""
    w_all, b_all, a, c = _neurons(model)
    d = w_all.shape[1]
    w_new = torch.zeros(d, dtype=w_all.dtype) if w is None else torch.as_tensor(w, dtype=w_all.dtype).reshape(-1)
    if w_new.numel() != d:
        raise ValueError(f"w must have {d} entries (the input dimension), got {w_new.numel()}")
    if b is not None and b_all is None and float(b) != 0.0:
        raise ValueError(f"b={b} given, but the network has no hidden biases (model.bias=false)")
    w_all = torch.cat([w_all, w_new.to(w_all.device)[None]])
    if b_all is not None:
        b_new = 0.0 if b is None else float(b)
        b_all = torch.cat([b_all, torch.full((1,), b_new, dtype=b_all.dtype, device=b_all.device)])
    a = torch.cat([a, torch.zeros_like(a[:1])])
    return two_layer_from_neurons(model.spec, w_all, b_all, a, c)


def critical_embedding(model: MLP, splits: Sequence[tuple[int, float]] = (), nulls: int = 0) -> MLP:
    """The splits (j, delta) applied in order (j indexes the current net, whose copies are
    appended at the end), then `nulls` null neurons with w = 0, b = 0. Critical for any data when
    sigma(0) = 0 or nulls = 0 (see the module docstring); width m + len(splits) + nulls."""
    if nulls < 0:
        raise ValueError(f"nulls must be >= 0, got {nulls}")
    if not splits and not nulls:
        raise ValueError("critical_embedding needs at least one split or null neuron")
    for j, delta in splits:
        model = split_neuron(model, j, delta)
    for _ in range(nulls):
        model = null_embedding(model)
    return model


def reduce_neurons(
    w: Tensor, b: Tensor | None, a: Tensor, *, odd: bool, zero_at_zero: bool, atol: float = 1e-8
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Critical reduction of effective neurons (w (m, d), b (m,) or None, a (m, k) or (m,)).

    Neurons are visited in order; one whose (w, b) equals an earlier kept neuron's within atol
    (max abs difference) adds its a to that neuron's; with `odd` (a sigma(-z) = -a sigma(z)) one
    equal to minus a kept (w, b) subtracts its a. Then neurons with max |a| <= atol are dropped
    and, with `zero_at_zero` (sigma(0) = 0), neurons with max |(w, b)| <= atol. Kept neurons keep
    their first-seen (w, b) and order. Returns (w, b, a (m', k)); m' may be 0.
    """
    wb = w if b is None else torch.cat([w, b[:, None]], dim=1)
    a = a[:, None] if a.ndim == 1 else a
    keep: list[int] = []
    merged = a.clone()
    for k in range(len(wb)):
        if keep:
            reps = wb[keep]
            same = (reps - wb[k]).abs().amax(dim=1) <= atol
            flipped = (reps + wb[k]).abs().amax(dim=1) <= atol if odd else torch.zeros_like(same)
            if same.any():
                merged[keep[int(same.nonzero()[0])]] += a[k]
                continue
            if flipped.any():
                merged[keep[int(flipped.nonzero()[0])]] -= a[k]
                continue
        keep.append(k)
    idx = torch.tensor(keep, dtype=torch.long)
    alive = merged[idx].abs().amax(dim=1) > atol
    if zero_at_zero:
        alive &= wb[idx].abs().amax(dim=1) > atol
    idx = idx[alive]
    return w[idx], None if b is None else b[idx], merged[idx]


def reduce_network(model: MLP, *, atol: float = 1e-8) -> MLP:
    """The critical reduction of a two-layer MLP (`reduce_neurons` with the activation's symmetry
    from `activation_symmetry`): a narrower MLP of the same spec with the same output function
    (up to the merged neurons' atol). A function that needs no neuron at all (f = c) has no
    width-0 MLP; it comes back as width 1 with w = 0, b = 0, a = 0."""
    w, b, a, c = _neurons(model)
    odd, zero = activation_symmetry(model.sigma)
    w, b, a = reduce_neurons(w, b, a, odd=odd, zero_at_zero=zero, atol=atol)
    if len(w) == 0:
        w, a = torch.zeros(1, w.shape[1], dtype=w.dtype), torch.zeros(1, a.shape[1], dtype=a.dtype)
        b = None if b is None else torch.zeros(1, dtype=b.dtype)
    return two_layer_from_neurons(model.spec, w, b, a, c)


def merge_condensed(w: np.ndarray, a: np.ndarray, big_fraction: float) -> np.ndarray:
    """One neuron from the big neurons (|a_k| ||w_k|| > big_fraction * max) of a condensed two-layer
    net without biases, w (m, d), a (m,), the reduction of arXiv:2405.17501 applied to a plateau:
    each (w_k, a_k) sign-aligned to the biggest neuron's direction (for an odd activation such as
    tanh, (w, a) and (-w, -a) are one neuron), then a = sum a_k and w = sum a_k w_k / a (their
    linear parts add up exactly). Returns the width-1 theta (w_1 .. w_d, a)."""
    size = np.abs(a) * np.linalg.norm(w, axis=1)
    big = np.flatnonzero(size > big_fraction * size.max())
    lead = w[int(np.argmax(size))]
    sign = np.where(w[big] @ lead >= 0, 1.0, -1.0)
    wb, ab = w[big] * sign[:, None], a[big] * sign
    total = float(ab.sum())
    return np.concatenate([(ab[:, None] * wb).sum(0) / total, [total]])
