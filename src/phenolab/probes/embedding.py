"""Curvature predictions for critical embeddings of a two-layer network (saddle branches).

At a critical point of a two-layer net f(x) = sum_k a_k sigma(w_k . x + b_k) + c, the embedding
operators of `phenolab.models.embedding` give critical points of wider nets with the same output.
Their new Hessian directions are predicted from the narrow net alone (Zhang, Zhang, Luo, arXiv
2405.17501; Fukumizu & Amari-type computation, docs/specs/embedding-principle.md). Notation: e_i = f(x_i) - y_i
(k outputs), x~_i = (x_i, 1) with hidden biases, else x_i.

Loss convention (option ``loss``): "half" (default) is the protocols' L = (1/2n) sum_i ||e_i||^2;
"mse" is phenolab's `phenolab.probes.hessian.mse`, mean over samples and outputs of e^2, i.e.
(2/k) times "half"; every curvature returned is in the chosen convention.

Split (T_delta on neuron j). Move the copies' input weights (w_j, b_j) by (1 - delta) eps v and
-delta eps v (a parameter step of norm eps sqrt(delta^2 + (1 - delta)^2) for a unit v). The
first-order output change cancels; the second-order one is (eps^2 / 2) delta (1 - delta) a_j
sigma''(z_ij) (v . x~_i)^2, so L changes by (eps^2 / 2) delta (1 - delta) v^T (a_j H_e) v with

    a_j H_e = (1/n) sum_i (e_i . a_j) sigma''(w_j . x~_i) x~_i x~_i^T      ("half" convention)

and the curvature per unit parameter norm along that direction is

    lambda_split(delta, v) = delta (1 - delta) v^T (a_j H_e) v / (delta^2 + (1 - delta)^2).

It is a Rayleigh quotient of the embedded Hessian, so the Hessian's smallest eigenvalue is <=
min_v lambda_split; at delta = 1/2 the split direction is orthogonal to the narrow directions and
the two agree. If a_j H_e has a negative eigenvalue, delta in (0, 1) gives a strict saddle; a
positive one does so for delta outside [0, 1].

Null neuron (a = 0, w = 0, b = 0, sigma(0) = 0). The new neuron's Hessian block decouples from the
rest and is [[0, G], [G^T, 0]] over (a_new (k), w~_new (d~)), G = sigma'(0) (1/n) sum_i e_i x~_i^T:
eigenvalues +- the singular values of G (+-||g|| for one output) and |k - d~| zeros.

The model is any two-layer net that `phenolab.probes.neurons.two_layer_neurons` reads (phenolab's
MLP in effective weights, or two nn.Linear layers); e is its actual output minus y, so a centred
MLP (whose subtracted initial output does not depend on theta) is covered too. The predictions
are curvatures in EFFECTIVE weights; a Hessian of phenolab's MLP in its raw parameters is
S H S with S the diagonal of the layer multipliers, so they agree only where S = 1 (standard
parametrization, output_scale 1).
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
from torch import Tensor, nn

from phenolab.activations import get_activation
from phenolab.probes.evaluate import as_2d, predict, target_matrix
from phenolab.probes.neurons import two_layer_neurons
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.probes.requirements import TWO_LAYER
from phenolab.tasks.base import Task

__all__ = ["count_directions", "hessian_inertia", "null_curvature", "saddle_branches_probe", "split_curvature"]

LossConvention = Literal["half", "mse"]
Activation = str | Callable[[Tensor], Tensor] | None


def _activation(model: nn.Module, activation: Activation) -> Callable[[Tensor], Tensor]:
    if callable(activation):
        return activation
    if isinstance(activation, str):
        return get_activation(activation)
    sigma = getattr(model, "sigma", None)  # phenolab's MLP
    if sigma is None:
        raise ValueError(f"activation: give the activation (a name such as 'tanh', or a callable) for "
                         f"{type(model).__name__}; only phenolab's MLP carries its own")
    return sigma


def _derivatives(sigma: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """sigma'(z), sigma''(z) elementwise by autograd (sigma'' = 0 where sigma' is piecewise constant)."""
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (d1,) = torch.autograd.grad(sigma(z).sum(), z, create_graph=True)
        d2 = torch.autograd.grad(d1.sum(), z)[0] if d1.requires_grad else torch.zeros_like(z)
    return d1.detach(), d2.detach()


class _Point:
    """Effective neurons, residuals and extended inputs of a two-layer net on (x, y), float64."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, activation: Activation, loss: LossConvention) -> None:
        if loss not in ("half", "mse"):
            raise ValueError(f"loss: must be 'half' ((1/2n) sum ||e||^2) or 'mse' (mean e^2), got {loss!r}")
        w, b, a = two_layer_neurons(model)
        self.w, self.a = w.double().cpu(), a.double().cpu()
        self.b = None if b is None else b.double().cpu()
        out = as_2d(predict(model, x))
        self.e = torch.from_numpy(out - target_matrix(y, out.shape[1]))
        x = torch.as_tensor(x).double().cpu().reshape(len(out), -1)
        self.xt = x if b is None else torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        self.sigma = _activation(model, activation)
        n, k = self.e.shape
        self.scale = 1.0 / n if loss == "half" else 2.0 / (n * k)  # the 1/n of the "half" formulas

    def a_he(self, j: int) -> Tensor:
        """a_j H_e (d~, d~) in the chosen convention."""
        m = len(self.w)
        if not -m <= j < m:
            raise ValueError(f"j: neuron index must be in [0, {m}), got {j}")
        z = self.xt[:, : self.w.shape[1]] @ self.w[j] + (0.0 if self.b is None else self.b[j])
        _, d2 = _derivatives(self.sigma, z)
        coef = (self.e @ self.a[j]) * d2
        return self.scale * (self.xt.T * coef) @ self.xt


def split_curvature(
    model: nn.Module, x: Tensor, y: Tensor, j: int, delta: float, *,
    activation: Activation = None, loss: LossConvention = "half",
) -> dict[str, float | np.ndarray]:
    """Predicted curvature of the splitting embedding T_delta of neuron j (module docstring),
    for a two-layer `model` at a critical point of its loss on (x, y). (The Rayleigh quotient
    along the split direction is this at any point; criticality makes the split point critical,
    hence a strict saddle when ``lambda_min`` < 0.)

    Returns ``lambda_min`` = min over unit v of lambda_split(delta, v) (negative: the split
    point is a strict saddle along the split direction), ``direction`` its unit v (d~,),
    ``eigenvalues`` of a_j H_e (ascending, d~) and ``factor`` = delta (1 - delta) /
    (delta^2 + (1 - delta)^2); curvatures in the ``loss`` convention. ``activation``: the
    model's own for phenolab's MLP, else a name or a callable.
    """
    point = _Point(model, x, y, activation, loss)
    values, vectors = torch.linalg.eigh(point.a_he(j))
    delta = float(delta)
    factor = delta * (1.0 - delta) / (delta**2 + (1.0 - delta) ** 2)
    pick = 0 if factor >= 0 else -1
    return {"lambda_min": float(factor * values[pick]), "direction": vectors[:, pick].numpy(),
            "eigenvalues": values.numpy(), "factor": factor}


def null_curvature(
    model: nn.Module, x: Tensor, y: Tensor, *, activation: Activation = None, loss: LossConvention = "half",
) -> dict[str, float | np.ndarray]:
    """Predicted Hessian block of a null neuron (a = 0, w = 0, b = 0) appended to a two-layer
    `model` at a critical point on (x, y); needs sigma(0) = 0 (ValueError otherwise, where the
    block couples to the other parameters).

    Returns ``g`` = G (k, d~) = sigma'(0) (1/n) sum_i e_i x~_i^T, ``g_norm`` its spectral norm
    (||g|| for one output) and ``eigenvalues`` of the block [[0, G], [G^T, 0]] (ascending, k + d~:
    +- the singular values of G and zeros); all in the ``loss`` convention.
    """
    point = _Point(model, x, y, activation, loss)
    zero = torch.zeros(1, dtype=torch.float64)
    if point.sigma(zero).abs().item() > 1e-15:
        raise ValueError(f"null_curvature needs sigma(0) = 0, got sigma(0) = {point.sigma(zero).item():g}")
    d1, _ = _derivatives(point.sigma, zero)
    g = point.scale * d1.item() * point.e.T @ point.xt
    k, dt = g.shape
    block = torch.zeros(k + dt, k + dt, dtype=torch.float64)
    block[:k, k:], block[k:, :k] = g, g.T
    return {"g": g.numpy(), "g_norm": float(torch.linalg.matrix_norm(g, ord=2)),
            "eigenvalues": torch.linalg.eigvalsh(block).numpy()}


def hessian_inertia(eigenvalues: np.ndarray | Tensor, tol: float = 1e-8) -> tuple[int, int, int]:
    """(#negative, #zero, #positive) eigenvalues; zero means |lambda| <= tol * max |lambda|
    (a relative tolerance; all zero for an all-zero spectrum)."""
    lam = np.asarray(torch.as_tensor(eigenvalues).detach().cpu().double()).reshape(-1)
    cut = tol * (np.abs(lam).max() if lam.size else 0.0)
    return int((lam < -cut).sum()), int((np.abs(lam) <= cut).sum()), int((lam > cut).sum())


@register_probe("saddle_branches", requires=(TWO_LAYER,))
def saddle_branches_probe(
    model: nn.Module, task: Task, *, activation: Activation = None, loss: LossConvention = "half",
) -> ProbeResult:
    """Saddle branches available from a two-layer net on the training set (meaningful at a
    critical point, e.g. a loss plateau): array ``split_eigenvalues`` (m, d~), the eigenvalues
    of a_j H_e per neuron j; ``split_min`` = min_j of the delta = 1/2 prediction min_v
    lambda_split, i.e. the smallest eigenvalue / 2 (negative: splitting that neuron in half
    gives a strict saddle); and, when sigma(0) = 0, ``null_g_norm`` (the null neuron's
    curvature +-||G||). Curvatures in the ``loss`` convention (module docstring)."""
    point = _Point(model, task.x_train, task.y_train, activation, loss)
    eig = torch.stack([torch.linalg.eigvalsh(point.a_he(j)) for j in range(len(point.w))]).numpy()
    out: ProbeResult = {"split_eigenvalues": eig, "split_min": float(eig.min() / 2)}
    zero = torch.zeros(1, dtype=torch.float64)
    if point.sigma(zero).abs().item() <= 1e-15:
        out["null_g_norm"] = null_curvature(model, task.x_train, task.y_train, activation=activation,
                                            loss=loss)["g_norm"]
    return out


def count_directions(w: np.ndarray, a: np.ndarray, big_fraction: float, cos_merge: float) -> int:
    """Condensation of a two-layer net, input weights w (m, d) and output weights a (m,): Distinct directions
    among the big neurons (|a_k| ||w_k|| > big_fraction * max), grouped greedily from the biggest: a neuron
    joins the first group whose leader has |cos| > cos_merge."""
    norms = np.linalg.norm(w, axis=1)
    size = np.abs(a) * norms
    if size.max() <= 0:
        return 0
    big = np.flatnonzero(size > big_fraction * size.max())
    big = big[np.argsort(-size[big], kind="stable")]
    leaders: list[np.ndarray] = []
    for k in big:
        u = w[k] / norms[k]
        if not any(abs(float(u @ v)) > cos_merge for v in leaders):
            leaders.append(u)
    return len(leaders)
