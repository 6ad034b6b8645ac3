"""Plain full-batch gradient descent written out in numpy, for tiny models whose gradients are
closed-form: the loops of the theory experiments (embedding principle, optimistic sample size).

Loss convention: the theory papers' L = (1 / 2n) sum_i e_i^2 over a sample of n points, e_i =
f(x_i) - y_i (`phenolab.objectives.half_mse`; half phenolab's ``mse``). The update is plain GD,
theta <- theta - lr grad L(theta), on every parameter at once. Each trainer returns its loss
series (and what its experiment needs of the trajectory); the iterates are the same, operation by
operation, as the loops they replace in the experiment modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

__all__ = ["ProductFit", "TanhFit", "coefficient_product_gd", "linear_gd_limit", "product_losses",
           "tanh_two_layer_gd", "tanh_two_layer_loss_grad"]


# ----------------------------------------------------------------------------- two-layer tanh net
def tanh_two_layer_loss_grad(w: np.ndarray, a: np.ndarray, x: np.ndarray,
                             y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss L = (1/2n) sum_i e_i^2 of f(x) = tanh(x w^T) a (no biases; w (m, d), a (m,), x (n, d),
    y (n,)) and its gradients: with h = tanh(x w^T) and e = h a - y,
    dL/dw = ((e a) (1 - h^2))^T x / n (m, d) and dL/da = h^T e / n (m,)."""
    h = np.tanh(x @ w.T)
    e = h @ a - y
    n = len(y)
    return 0.5 * float(e @ e) / n, ((e[:, None] * a) * (1.0 - h * h)).T @ x / n, h.T @ e / n


@dataclass
class TanhFit:
    """GD of a two-layer tanh net: loss and gradient norm ||grad L|| at every step t = 0 .. steps
    (before update t + 1), the final parameters (after `steps` updates), and the parameters (w, a)
    at each asked snapshot step."""

    loss: np.ndarray
    grad_norm: np.ndarray
    w: np.ndarray
    a: np.ndarray
    snapshots: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def plateaus(self, escape_fraction: float, count: int = 2) -> tuple[int, list[int]]:
        """The escape from the start (the first step with L < escape_fraction L(0); -1: none) and the
        first `count` plateaus after it, read as local minima t of ||grad L|| (t > escape,
        grad_norm[t] <= both neighbours)."""
        loss, g = self.loss, self.grad_norm
        escape = next((t for t in range(len(loss)) if loss[t] < escape_fraction * loss[0]), -1)
        minima = [t for t in range(1, len(g) - 1)
                  if escape >= 0 and t > escape and g[t] <= g[t - 1] and g[t] <= g[t + 1]]
        return escape, minima[:count]


def tanh_two_layer_gd(w: np.ndarray, a: np.ndarray, x: np.ndarray, y: np.ndarray, *, lr: float, steps: int,
                      snapshot_steps: Iterable[int] = ()) -> TanhFit:
    """`steps` full-batch GD steps (w, a) <- (w, a) - lr (dL/dw, dL/da) on L = (1/2n) sum e^2 of
    f = tanh(x w^T) a (`tanh_two_layer_loss_grad`), float64 numpy.

    Records L and ||grad L|| = sqrt(|dL/dw|_F^2 + |dL/da|^2) at every step t = 0 .. steps, and
    keeps (w, a) at the steps of `snapshot_steps` (t = 0: the start). GD is deterministic, so a
    second call to step t gives the parameters a first call passed through there."""
    if lr <= 0 or steps < 0:
        raise ValueError(f"tanh_two_layer_gd: need lr > 0 and steps >= 0; got lr={lr}, steps={steps}")
    keep = set(snapshot_steps)
    loss, gnorm = np.empty(steps + 1), np.empty(steps + 1)
    snapshots: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for t in range(steps + 1):
        loss[t], gw, ga = tanh_two_layer_loss_grad(w, a, x, y)
        gnorm[t] = math.sqrt(float((gw * gw).sum() + ga @ ga))
        if t in keep:
            snapshots[t] = (w, a)
        if t < steps:
            w, a = w - lr * gw, a - lr * ga
    return TanhFit(loss, gnorm, w, a, snapshots)


# ----------------------------------------------------------------------------- coefficient products
def _others(u: np.ndarray) -> np.ndarray:
    """prod_{j != l} u_j for every factor l (members, L, k): prefix times suffix products."""
    L = u.shape[1]
    ones = np.ones_like(u[:, 0])
    pre, suf = [ones], [ones]
    for index in range(L - 1):
        pre.append(pre[-1] * u[:, index])
        suf.append(suf[-1] * u[:, L - 1 - index])
    return np.stack([pre[index] * suf[L - 1 - index] for index in range(L)], 1)


def product_losses(u: np.ndarray, phi: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """L_b = (1/2) sum_i weight_bi (phi_bi . c_b - y_bi)^2 with c_b = prod_l u_bl, per member (B,)."""
    c = u.prod(1)
    return 0.5 * (weight * (np.matmul(phi, c[..., None])[..., 0] - y) ** 2).sum(1)


@dataclass
class ProductFit:
    """GD of coefficient-product models: final factors u (B, L, k), and the losses (B, T) at the
    recorded steps (T,)."""

    u: np.ndarray
    steps: np.ndarray
    loss: np.ndarray


def coefficient_product_gd(u: np.ndarray, phi: np.ndarray, y: np.ndarray, weight: np.ndarray, *, lr: float,
                           steps: int, record_steps: Iterable[int] | None = None) -> ProductFit:
    """`steps` full-batch GD steps on L_b = (1/2) sum_i weight_bi (phi_bi . c_b - y_bi)^2 for every
    member b at once, c_b = prod_l u_bl (u: members x L x k, phi: members x n x k; weight = mask / n_b
    gives the (1 / 2 n_b) sum e^2 of `phenolab.train.batched`, `half_mse` on each member's sample).

    Update u_l <- u_l - lr dL/du_l for every factor l at once, with dL/dc = Phi^T (weight e) and
    dL/du_l = dL/dc prod_{j != l} u_j: the same iterates as `batched.gradient_descent` on the toy
    `CoefficientProduct` model (a test compares them), about 20x faster. Overflow is not an
    error: a diverging member's factors become inf/NaN. The loss (`product_losses`) is recorded
    at `record_steps` (t = number of updates done; default 0 and `steps`)."""
    record = sorted({0, steps} if record_steps is None else {int(t) for t in record_steps})
    if record and not 0 <= record[0] <= record[-1] <= steps:
        raise ValueError(f"record_steps: must lie in [0, {steps}], got {record[0]}..{record[-1]}")
    wanted = set(record)
    u = np.array(u, dtype=np.float64, copy=True)
    phi_t = np.ascontiguousarray(phi.transpose(0, 2, 1))
    history = []
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            if t in wanted:
                history.append(product_losses(u, phi, y, weight))
            others = _others(u)
            c = others[:, 0] * u[:, 0]
            r = (np.matmul(phi, c[..., None])[..., 0] - y) * weight
            gc = np.matmul(phi_t, r[..., None])[..., 0]
            u -= lr * (gc[:, None, :] * others)
        if steps in wanted:
            history.append(product_losses(u, phi, y, weight))
    return ProductFit(u, np.asarray(record), np.stack(history, 1) if history else np.zeros((len(u), 0)))


def linear_gd_limit(c0: np.ndarray, phi: np.ndarray, y: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Where GD (any small enough lr) on the linear least-squares loss (1 / 2 n_b) |Phi_b c - y_b|^2
    converges from c0_b: c0_b + pinv(Phi_b) (y_b - Phi_b c0_b), the solution nearest c0_b, for every
    member b on its first n_b = sizes[b] rows (c0 (B, k), phi (B, n_max, k), y (B, n_max))."""
    return np.stack([c0[b] + np.linalg.pinv(phi[b, :n]) @ (y[b, :n] - phi[b, :n] @ c0[b])
                     for b, n in enumerate(sizes)])
