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

import math
from collections.abc import Mapping, Sequence
from typing import Callable, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vmap

from phenolab.models.chain import layer_chain
from phenolab.probes.evaluate import target_matrix
from phenolab.probes.ntk_blocks import _contract, _eval_mode, _finish, _inputs, _readout, _trainable, _values
from phenolab.probes.ntk_measures import (
    _matrix,
    kernel_target_alignment,
    label_gradient_alignment,
    ntk_eig,
    relative_kernel_distance,
)
from phenolab.probes.ntk_structured import (
    Outputs,
    _layerwise_method,
    _two_layer_chain,
    _two_layer_method,
    two_layer_ntk,
)
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
METHODS = ("auto", "jacobian", "ntvp", "layerwise", "two_layer")
OUTPUTS = ("trace", "full", "sum")

# entries of the Jacobians (n1 [+ n2]) * P up to which "auto" prefers the jacobian method
JACOBIAN_BUDGET = 2**27
# the ntvp method pushes at most NTVP_CHUNK inputs' Jacobian rows, and at most NTVP_BUDGET
# entries (chunk * k * P), through one vmapped jvp; small chunks keep its (chunk, n2, width)
# tangent activations in cache
NTVP_CHUNK = 16
NTVP_BUDGET = 2**24


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
    return _finish(kernel, outputs)  # type: ignore[arg-type]


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
