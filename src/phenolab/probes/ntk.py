"""The empirical neural tangent kernel (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572) and
measurements on it.

For a network f(x; theta) with k outputs, the NTK of outputs a, b is

    Theta_ab(x, x') = sum_p  d f_a(x) / d theta_p  *  d f_b(x') / d theta_p,

summed over the trainable parameters (or a subset, ``params``). `empirical_ntk` returns

* ``outputs="trace"``: sum_a Theta_aa(x, x'), shape (n1, n2) (the per-output kernel for k = 1);
* ``outputs="full"``: Theta_ab(x, x'), shape (n1, k, n2, k);
* ``outputs="sum"``: the kernel of the summed output sum_a f_a, i.e. sum_ab Theta_ab, (n1, n2)
  (the kernel that label-gradient alignment uses, Mok et al. 2022, arXiv:2203.14577).

Methods, from the most structured to the most generic:

* ``two_layer``: closed form of a two-layer net f(x) = sum_k a_k sigma(w_k . x + b_k) + c in
  O(n^2 m) (see `two_layer_ntk`);
* ``layerwise``: chains of ``nn.Linear`` layers and elementwise activations (phenolab's `MLP`,
  or a user's ``nn.Sequential``): one forward pass collects each layer's input h_{l-1} and one
  backward pass its output sensitivities delta_l; Theta = sum_l (delta_l . delta_l')
  (mult_l^2 h_{l-1} . h_{l-1}' + bias_mult_l^2), a sum of per-layer Gram matrices;
* ``jacobian``: per-sample Jacobians by ``torch.func.vmap(jacrev)``, contracted (memory n k P);
* ``ntvp``: NTK-vector products: Jacobian rows of a chunk of x1 (vector-Jacobian products),
  pushed through f(x2) by ``torch.func.jvp`` (memory chunk k P, never the full Jacobian);
* ``auto``: two_layer, else layerwise when the model is such a chain, else jacobian when
  (n1 + n2) P is small, else ntvp (`ntk_method`).

Every method works at another parameter point (``point``, a dict like ``model.state_dict()``),
evaluates the model in eval mode, and restores each submodule's ``training`` flag.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from phenolab.models.chain import LAYERWISE_SUPPORTED, Affine, Elementwise, Op, Scale, layer_chain
from phenolab.probes.evaluate import class_labels, target_matrix
from phenolab.probes.neurons import is_two_layer, two_layer_neurons
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

__all__ = [
    "empirical_ntk",
    "kernel_target_alignment",
    "label_gradient_alignment",
    "layer_chain",
    "ntk_change_probe",
    "ntk_eig",
    "ntk_method",
    "ntk_probe",
    "relative_kernel_distance",
    "two_layer_ntk",
]

Method = Literal["auto", "jacobian", "ntvp", "layerwise", "two_layer"]
Outputs = Literal["trace", "full", "sum"]
METHODS = ("auto", "jacobian", "ntvp", "layerwise", "two_layer")
OUTPUTS = ("trace", "full", "sum")

# entries of the Jacobians (n1 [+ n2]) * P up to which "auto" prefers the jacobian method
JACOBIAN_BUDGET = 2**27
# the ntvp method pushes at most NTVP_CHUNK inputs' Jacobian rows, and at most NTVP_BUDGET
# entries (chunk * k * P), through one vmapped jvp; small chunks keep its (chunk, n2, width)
# tangent activations in cache
NTVP_CHUNK = 16
NTVP_BUDGET = 2**24

def _two_layer_chain(model: nn.Module, chain: list[Op] | None) -> bool:
    """Whether the chain is Affine, Elementwise, Affine (then an optional Scale) and
    `two_layer_neurons` reads the model."""
    if chain is None or not is_two_layer(model):
        return False
    body = chain[:-1] if isinstance(chain[-1], Scale) else chain
    return [type(op) for op in body] == [Affine, Elementwise, Affine]


def ntk_method(model: nn.Module, n1: int, n2: int | None = None, params: Sequence[str] | None = None) -> str:
    """The method ``method="auto"`` picks for n1 x n2 inputs (``n2=None``: the same inputs):
    "two_layer" for a two-layer chain, "layerwise" for a deeper chain (`layer_chain`), else
    "jacobian" when the Jacobians' (n1 [+ n2]) P entries for P trainable parameters fit in
    JACOBIAN_BUDGET, else "ntvp"."""
    chain = layer_chain(model)
    if chain is not None:
        return "two_layer" if _two_layer_chain(model, chain) else "layerwise"
    names = _trainable(model, params)
    size = sum(p.numel() for name, p in model.named_parameters() if name in names)
    return "jacobian" if (n1 + (n2 or 0)) * size <= JACOBIAN_BUDGET else "ntvp"


# ----------------------------------------------------------------------------- set-up
def _trainable(model: nn.Module, params: Sequence[str] | None) -> list[str]:
    """Names of the differentiated parameters: ``params`` (checked) or all with requires_grad."""
    named = dict(model.named_parameters())
    if params is None:
        return [name for name, p in named.items() if p.requires_grad]
    if isinstance(params, str):
        raise TypeError(f"params must be a list of parameter names, got the string {params!r}")
    unknown = [name for name in params if name not in named]
    if unknown:
        raise KeyError(f"params names {unknown} are not parameters of the model; known: {sorted(named)}")
    if not params:
        raise ValueError("params must name at least one parameter")
    return list(dict.fromkeys(params))


def _values(model: nn.Module, point: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
    """Detached parameters and buffers of the model, replaced by ``point``'s entries."""
    values = {name: t.detach() for name, t in model.named_parameters()}
    values.update({name: t.detach() for name, t in model.named_buffers()})
    if point is None:
        return values
    unknown = [name for name in point if name not in values]
    if unknown:
        raise KeyError(f"point has entries {unknown} that the model lacks; give a dict like model.state_dict()")
    for name, tensor in point.items():
        live = values[name]
        values[name] = torch.as_tensor(tensor).detach().to(device=live.device, dtype=live.dtype)
    return values


def _inputs(model: nn.Module, x: Tensor | np.ndarray) -> Tensor:
    """x as a tensor in the dtype and on the device of the model's first floating parameter."""
    x = torch.as_tensor(x)
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return x.to(device=tensor.device, dtype=tensor.dtype) if x.is_floating_point() else x
    return x


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _readout(values: Tensor, outputs: str, axis: int) -> Tensor:
    """Output axis ``axis`` kept for trace/full, summed (kept as size 1) for "sum"."""
    return values.sum(axis, keepdim=True) if outputs == "sum" else values


def _contract(a: Tensor, b: Tensor, full: bool) -> Tensor:
    """a (n1, r, q), b (n2, r, q) -> sum_q a_irq b_jsq as (n1, r, n2, s) if ``full``, else its
    trace over r = s, sum_{r, q} a_irq b_jrq, as (n1, n2)."""
    n1, r, _ = a.shape
    n2 = b.shape[0]
    if full:
        return (a.reshape(n1 * r, -1) @ b.reshape(n2 * r, -1).T).reshape(n1, r, n2, r)
    return a.reshape(n1, -1) @ b.reshape(n2, -1).T


def _weighted(block: Tensor, gram: Tensor, full: bool) -> Tensor:
    """Elementwise product of a fresh (n1, [r,] n2, [r]) block with an (n1, n2) Gram matrix,
    in place."""
    return block.mul_(gram[:, None, :, None] if full else gram)


# ----------------------------------------------------------------------------- public entry
def empirical_ntk(
    model: nn.Module,
    x1: Tensor | np.ndarray,
    x2: Tensor | np.ndarray | None = None,
    *,
    method: Method = "auto",
    outputs: Outputs = "trace",
    params: Sequence[str] | None = None,
    point: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Empirical NTK Theta(x1, x2) = J(x1) J(x2)^T of `model` (Jacot et al., arXiv:1806.07572).

    ``x2=None`` means x2 = x1. ``outputs``: "trace" (n1, n2) = sum_a Theta_aa, "full"
    (n1, k, n2, k), "sum" (n1, n2) = the kernel of sum_a f_a. ``params``: names of the
    parameters to differentiate (default: every parameter with requires_grad). ``point``:
    parameter values to evaluate at (a dict like ``model.state_dict()``; missing entries take the
    live values). ``method``: see the module docstring; a forced structured method raises a
    ValueError on a model it cannot read. Returned detached, in the model's dtype.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {', '.join(OUTPUTS)}, got {outputs!r}")
    a = _inputs(model, x1)
    b = a if x2 is None else _inputs(model, x2)
    names = _trainable(model, params)
    values = _values(model, point)
    chosen = ntk_method(model, len(a), None if x2 is None else len(b), names) if method == "auto" else method
    with _eval_mode(model):
        if chosen == "two_layer":
            kernel = _two_layer_method(model, a, b, outputs, names, values)
        elif chosen == "layerwise":
            kernel = _layerwise_method(model, a, b, outputs, names, values)
        elif chosen == "jacobian":
            kernel = _jacobian_method(model, a, b, outputs, names, values)
        else:
            kernel = _ntvp_method(model, a, b, outputs, names, values)
    return kernel.detach()


def _finish(block: Tensor, outputs: str) -> Tensor:
    """(n1, r, n2, r) or (n1, n2) block to the requested shape ("sum" has r = 1)."""
    if outputs == "sum" and block.ndim == 4:
        return block[:, 0, :, 0]
    return block


# ----------------------------------------------------------------------------- layerwise
@dataclass
class _Pass:
    """Per-Affine inputs h_{l-1} (n, fan_in) and sensitivities delta_l (n, r, fan_out)."""

    inputs: list[Tensor]
    deltas: list[Tensor]


def _value_and_slope(fn: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """(fn(z), fn'(z)) of an elementwise fn: the vector-Jacobian product with a tangent of ones
    (reverse mode; works under ``torch.no_grad``). An in-place module acts on a copy."""
    if getattr(fn, "inplace", False):
        value, pull = vjp(lambda u: fn(u.clone()), z)
    else:
        value, pull = vjp(fn, z)
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
            slope = slopes.pop()
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
            outputs=outputs, trained=frozenset(trained),
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


# ----------------------------------------------------------------------------- generic
def _functional(model: nn.Module, values: Mapping[str, Tensor]) -> Callable[[dict[str, Tensor], Tensor], Tensor]:
    """(trainable values, x (n, d)) -> f(x) as (n, k), the other entries fixed to ``values``."""

    def f(trainable: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(model, {**values, **trainable}, (x,))
        if not isinstance(out, Tensor):
            raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
        return out.reshape(len(x), -1)

    return f


def _jacobian_rows(
    f: Callable[[dict[str, Tensor], Tensor], Tensor], trainable: dict[str, Tensor], x: Tensor, outputs: str
) -> dict[str, Tensor]:
    """Per-sample Jacobians d f(x_i) / d theta by vmap(jacrev), each (n, r, *param shape)."""

    def single(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return f(p, xi[None])[0]

    rows = vmap(jacrev(single), in_dims=(None, 0))(trainable, x)
    return {name: _readout(rows[name], outputs, 1) for name in trainable}


def _jacobian_method(
    model: nn.Module, x1: Tensor, x2: Tensor, outputs: str, names: list[str], values: Mapping[str, Tensor]
) -> Tensor:
    """Theta = sum over parameter tensors of J1 J2^T (memory n k P)."""
    f = _functional(model, values)
    trainable = {name: values[name] for name in names}
    full = outputs == "full"
    j1 = _jacobian_rows(f, trainable, x1, outputs)
    j2 = j1 if x2 is x1 else _jacobian_rows(f, trainable, x2, outputs)
    kernel = sum(_contract(j1[n].flatten(2), j2[n].flatten(2), full) for n in names)
    return _finish(kernel, outputs)


def _ntvp_method(
    model: nn.Module, x1: Tensor, x2: Tensor, outputs: str, names: list[str], values: Mapping[str, Tensor]
) -> Tensor:
    """Theta(x1, x2) column block by column block: the Jacobian rows v of a chunk of x1
    (vector-Jacobian products), then J(x2) v by ``torch.func.jvp``; memory chunk k P."""
    f = _functional(model, values)
    trainable = {name: values[name] for name in names}
    size = sum(t.numel() for t in trainable.values())
    k = f(trainable, x1[:1]).shape[1]
    chunk = max(1, min(NTVP_CHUNK, NTVP_BUDGET // max(1, size * k)))

    def push(tangent: dict[str, Tensor]) -> Tensor:
        return _readout(jvp(lambda p: f(p, x2), (trainable,), (tangent,))[1], outputs, 1)

    blocks = []
    for start in range(0, len(x1), chunk):
        rows = _jacobian_rows(f, trainable, x1[start : start + chunk], outputs)
        c, r = next(iter(rows.values())).shape[:2]
        tangents = {name: t.reshape(c * r, *t.shape[2:]) for name, t in rows.items()}
        blocks.append(vmap(push)(tangents).reshape(c, r, len(x2), r))
    block = torch.cat(blocks)
    if outputs == "full":
        return block
    return torch.einsum("iaja->ij", block)


# ----------------------------------------------------------------------------- measurements
def _matrix(K: Tensor | np.ndarray) -> np.ndarray:
    """float64 square matrix; a full (n, k, n, k) kernel becomes (n k, n k)."""
    arr = K.detach().cpu().to(torch.float64).numpy() if isinstance(K, Tensor) else np.asarray(K, dtype=np.float64)
    if arr.ndim == 4:
        arr = arr.reshape(arr.shape[0] * arr.shape[1], arr.shape[2] * arr.shape[3])
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"need a square kernel matrix (n, n) or (n, k, n, k), got shape {arr.shape}")
    return arr


def ntk_eig(K: Tensor | np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues in descending order and the eigenvectors (columns) of the symmetrized kernel
    (K + K^T)/2, the top ``k`` (default all); float64 numpy."""
    sym = _matrix(K)
    values, vectors = np.linalg.eigh((sym + sym.T) / 2)
    order = np.argsort(values)[::-1][: len(values) if k is None else k]
    return values[order], vectors[:, order]


def _targets(y: Tensor | np.ndarray) -> np.ndarray:
    """float64 (n, k): integer labels (n,) become one-hot, float targets stay."""
    y_t = torch.as_tensor(y)
    if not y_t.is_floating_point() and y_t.ndim == 1:
        return target_matrix(y_t, int(y_t.max()) + 1 if len(y_t) else 0)
    return target_matrix(y_t, 1)


def _centered(M: np.ndarray) -> np.ndarray:
    """H M H with H = I - 1 1^T / n."""
    return M - M.mean(axis=0, keepdims=True) - M.mean(axis=1, keepdims=True) + M.mean()


def _cosine(A: np.ndarray, B: np.ndarray) -> float:
    """<A, B>_F / (||A||_F ||B||_F); NaN if either is 0."""
    denom = float(np.linalg.norm(A) * np.linalg.norm(B))
    return float(np.sum(A * B) / denom) if denom > 0 else math.nan


def kernel_target_alignment(K: Tensor | np.ndarray, y: Tensor | np.ndarray, centered: bool = False) -> float:
    """A = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F) (Cristianini et al. 2001; for one output
    y^T K y / (||K||_F ||y||^2), the uncentred "CKA" of Kumar et al., arXiv:2310.06110).
    ``centered``: the same of H K H and H Y Y^T H, H = I - 1 1^T / n (Cortes et al. 2012).
    ``y``: (n,) or (n, k) targets; integer labels (n,) are one-hot encoded. NaN for a zero kernel."""
    kernel = _matrix(K)
    targets = _targets(y)
    if len(targets) != len(kernel):
        raise ValueError(f"K is {kernel.shape[0]} x {kernel.shape[1]} but y has {len(targets)} rows")
    gram = targets @ targets.T
    if centered:
        kernel, gram = _centered(kernel), _centered(gram)
    return _cosine(kernel, gram)


def label_gradient_alignment(K: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """LGA (Mok et al. 2022, CVPR, arXiv:2203.14577): the Pearson correlation of the
    entries of K and of L, L_ij = +1 if y_i = y_j else -1:

        LGA = <K - mean(K), L - mean(L)>_F / (||K - mean(K)||_F ||L - mean(L)||_F).

    Mok et al. use the NTK of the summed logits, ``empirical_ntk(..., outputs="sum")`` (their
    code differentiates the weights only: ``params=[...weight names]``). ``labels``: integer
    (n,) or one-hot / scores (n, k) (argmax). NaN when all labels are equal.
    """
    kernel = _matrix(K)
    classes = class_labels(labels)
    if len(classes) != len(kernel):
        raise ValueError(f"K is {kernel.shape[0]} x {kernel.shape[1]} but there are {len(classes)} labels")
    same = np.where(classes[:, None] == classes[None, :], 1.0, -1.0)
    return _cosine(kernel - kernel.mean(), same - same.mean())


def relative_kernel_distance(
    K1: Tensor | np.ndarray, K2: Tensor | np.ndarray, form: Literal["frobenius", "cosine"] = "frobenius"
) -> float:
    """Distance of K1 from the reference K2: "frobenius" ||K1 - K2||_F / ||K2||_F (the
    rel. Frobenius error of NTK-1a/1b, docs/specs/ntk-convergence.md); "cosine" 1 - <K1, K2>_F / (||K1||_F ||K2||_F) (the kernel
    distance of Fort et al. 2020, arXiv:2010.15110, blind to the kernel's scale)."""
    first = np.asarray(K1.detach().cpu().to(torch.float64) if isinstance(K1, Tensor) else K1, dtype=np.float64)
    second = np.asarray(K2.detach().cpu().to(torch.float64) if isinstance(K2, Tensor) else K2, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"kernels of different shapes {first.shape} and {second.shape}")
    if form == "cosine":
        return 1.0 - _cosine(first, second)
    if form != "frobenius":
        raise ValueError(f"form must be 'frobenius' or 'cosine', got {form!r}")
    diff, base = float(np.linalg.norm(first - second)), float(np.linalg.norm(second))
    if base == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / base


# ----------------------------------------------------------------------------- probes
def _subsample(n: int, points: int) -> np.ndarray:
    """``points`` evenly spaced indices of range(n) (all if points >= n): deterministic and,
    on a sorted grid, spread over the whole interval."""
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    if points >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))


@register_probe("ntk")
def ntk_probe(
    model: nn.Module,
    task: Task,
    *,
    points: int = 256,
    method: Method = "auto",
    top: int = 10,
    reference_kernel: Tensor | np.ndarray | None = None,
    lga: bool = False,
    matrix: bool = False,
) -> ProbeResult:
    """The empirical NTK (``outputs="trace"``) on at most ``points`` training inputs (evenly
    spaced indices). Keys: ``trace`` (tr K), ``alignment`` (centred kernel-target alignment with
    the task's targets, integer labels one-hot), ``eig_0`` .. ``eig_{top-1}`` (descending; NaN
    past n), ``distance`` (`relative_kernel_distance` to ``reference_kernel``, NaN without one),
    array ``eigenvalues`` (all, descending); with ``lga`` (classification): ``lga``, the
    label-gradient alignment of the summed-output kernel; with ``matrix``: array ``kernel`` (n, n)
    and array ``inputs`` (the points it was computed on), for comparisons made after the run."""
    idx = torch.as_tensor(_subsample(len(task.x_train), points))
    x = task.x_train[idx]
    kernel = empirical_ntk(model, x, method=method)
    values, _ = ntk_eig(kernel)
    out: ProbeResult = {
        "trace": float(np.trace(_matrix(kernel))),
        "alignment": kernel_target_alignment(kernel, target_matrix(task.y_train[idx], task.output_dim), centered=True),
    }
    for i in range(top):
        out[f"eig_{i}"] = float(values[i]) if i < len(values) else math.nan
    out["distance"] = math.nan if reference_kernel is None else relative_kernel_distance(kernel, reference_kernel)
    out["eigenvalues"] = values
    if matrix:
        out["kernel"] = _matrix(kernel)
        out["inputs"] = x.detach().cpu().numpy()
    if lga:
        if task.kind != "classification":
            raise ValueError(f"lga=True needs a classification task, got kind={task.kind!r}")
        summed = empirical_ntk(model, x, method=method, outputs="sum")
        out["lga"] = label_gradient_alignment(summed, task.y_train[idx])
    return out


@register_probe("ntk_change", needs_reference=True)
def ntk_change_probe(
    model: nn.Module,
    task: Task,
    *,
    reference: Mapping[str, Tensor] | None = None,
    points: int = 256,
    method: Method = "auto",
    form: Literal["frobenius", "cosine"] = "frobenius",
) -> ProbeResult:
    """``distance``: `relative_kernel_distance` of the NTK at the current parameters from the NTK
    at ``reference`` (a dict like ``model.state_dict()`` at initialization), ||K_t - K_0||_F /
    ||K_0||_F by default, on the same ``points`` training inputs as the ``ntk`` probe."""
    if reference is None:
        raise ValueError("the ntk_change probe needs reference=<a state_dict of the model at initialization>")
    x = task.x_train[torch.as_tensor(_subsample(len(task.x_train), points))]
    now = empirical_ntk(model, x, method=method)
    start = empirical_ntk(model, x, method=method, point=reference)
    return {"distance": relative_kernel_distance(now, start, form=form)}
