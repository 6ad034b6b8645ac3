"""Probe ``parameters``: the trainable parameters as one flat vector, and helpers that put such a
vector back into a model to evaluate the function it computes.

theta is the concatenation of the trainable parameters (``requires_grad``) of any ``nn.Module``,
each flattened, in the order of ``model.named_parameters()``: the same order as the Hessian's
eigenvectors (`phenolab.probes.hessian`, option ``vectors=True``), so that a stored eigenvector
v and stored parameter points theta(t) can be combined, e.g. the change Delta theta = theta(t_2)
- theta(t_1), its component (Delta theta . v) v along v, and the function change that component
makes to first order, J(x; theta) v (a Jacobian-vector product, `directional_derivative`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from phenolab.probes.evaluate import evaluating, to_model_input
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

__all__ = [
    "assign_parameters",
    "directional_derivative",
    "flat_parameters",
    "function_values",
    "half_squared_error",
    "loss_and_gradient",
    "parameter_layout",
    "parameters_probe",
    "unflatten_parameters",
]


def parameter_layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the trainable parameters, in ``model.named_parameters()`` order."""
    return [(name, tuple(p.shape)) for name, p in model.named_parameters() if p.requires_grad]


def flat_parameters(model: nn.Module) -> np.ndarray:
    """theta: the trainable parameters flattened and concatenated (float64 copy, named_parameters order)."""
    values = [p.detach().reshape(-1).to(torch.float64).cpu() for _, p in model.named_parameters() if p.requires_grad]
    if not values:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (none with requires_grad)")
    return torch.cat(values).numpy()


def unflatten_parameters(model: nn.Module, theta: np.ndarray | Tensor) -> dict[str, Tensor]:
    """The flat vector `theta` split into the model's trainable parameters: name -> tensor of the
    parameter's shape, dtype and device (the inverse of `flat_parameters`). A ValueError names the
    expected length when `theta` has another."""
    flat = torch.as_tensor(np.asarray(theta) if not isinstance(theta, Tensor) else theta).reshape(-1)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    n = sum(p.numel() for _, p in named)
    if flat.numel() != n:
        raise ValueError(f"theta has {flat.numel()} entries but {type(model).__name__} has {n} trainable parameters")
    out: dict[str, Tensor] = {}
    offset = 0
    for name, p in named:
        out[name] = flat[offset:offset + p.numel()].reshape(p.shape).to(dtype=p.dtype, device=p.device)
        offset += p.numel()
    return out


def function_values(model: nn.Module, theta: np.ndarray | Tensor, x: Tensor | np.ndarray) -> np.ndarray:
    """f(x; theta): the model's outputs (n, k) on `x` with its trainable parameters set to `theta`
    (frozen parameters and buffers as they are), in eval mode, as float64. The model is not changed."""
    params = unflatten_parameters(model, theta)
    x = to_model_input(model, torch.as_tensor(x))
    with evaluating(model):
        out = functional_call(model, params, (x,))
    return out.detach().to(torch.float64).cpu().numpy().reshape(len(x), -1)


def directional_derivative(
    model: nn.Module, theta: np.ndarray | Tensor, v: np.ndarray | Tensor, x: Tensor | np.ndarray
) -> np.ndarray:
    """J(x; theta) v = d/ds f(x; theta + s v) at s = 0, for every input row of `x` (n, k), float64.

    Reverse over reverse (the "double-vjp" trick): with g(u) = J^T u, a linear function of a dummy
    cotangent u, J v = d(g(u) . v)/du; two backward passes through ``functional_call``, in eval
    mode. `v` is a flat vector in the layout of `flat_parameters`. To first order, moving the
    parameters by c v changes the function by c J v.
    """
    params = {name: t.detach().clone().requires_grad_(True) for name, t in unflatten_parameters(model, theta).items()}
    tangents = unflatten_parameters(model, v)
    x = to_model_input(model, torch.as_tensor(x))
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            out = functional_call(model, params, (x,))
            u = torch.zeros_like(out, requires_grad=True)
            grads = torch.autograd.grad(out, list(params.values()), u, create_graph=True, allow_unused=True)
            linked = [(g, tangents[name]) for g, name in zip(grads, params) if g is not None]
            if not linked:
                return np.zeros(tuple(out.shape)).reshape(len(x), -1)  # f does not depend on theta
            (jv,) = torch.autograd.grad([g for g, _ in linked], u, [t for _, t in linked], allow_unused=True)
    finally:
        for module, flag in flags:
            module.training = flag
    jv = torch.zeros_like(out) if jv is None else jv
    return jv.detach().to(torch.float64).cpu().numpy().reshape(len(x), -1)


def half_squared_error(f: Tensor, y: Tensor) -> Tensor:
    """The protocols' loss L = (1 / 2n) sum_i |f(x_i) - y_i|^2 (phenolab's `mse` / 2 for one output)."""
    return ((f - y) ** 2).sum() / (2 * len(f))


def loss_and_gradient(model: nn.Module, x: Tensor, y: Tensor, theta: np.ndarray | Tensor | None = None,
                      loss_fn=half_squared_error) -> tuple[float, np.ndarray]:
    """L(theta) and its gradient as a flat vector (`flat_parameters` order), at theta (default: the
    model's own parameters); the model is not changed. The form scipy.optimize takes (``jac=True``)."""
    theta = flat_parameters(model) if theta is None else theta
    params = {k: v.requires_grad_(True) for k, v in unflatten_parameters(model, torch.as_tensor(theta)).items()}
    loss = loss_fn(functional_call(model, params, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.item(), torch.cat([g.reshape(-1) for g in grads]).numpy()


def assign_parameters(model: nn.Module, theta: np.ndarray | Tensor) -> None:
    """Copy the flat vector theta into the model's trainable parameters, in place (for analyses that
    polish a parameter point; probes themselves never change a model)."""
    with torch.no_grad():
        for name, value in unflatten_parameters(model, torch.as_tensor(theta)).items():
            model.get_parameter(name).copy_(value)


@register_probe("parameters")
def parameters_probe(model: nn.Module, task: Task) -> ProbeResult:
    """Array ``theta`` (n,): the trainable parameters, flattened in ``model.named_parameters()``
    order (`flat_parameters`), float64; and ``norm`` = ||theta||_2. The task is not used."""
    theta = flat_parameters(model)
    return {"theta": theta, "norm": float(np.linalg.norm(theta))}
