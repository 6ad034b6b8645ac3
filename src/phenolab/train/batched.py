"""Many small networks, each with its own training set, trained in one batched computation.

The recovery experiments (optimistic sample size, single-neuron recovery, local recovery) train
hundreds of tiny networks that differ in seed, initialization and *sample*: each member b has
its own n_b training points. The members share one architecture (`model`, whose parameters
are replaced, never modified), their parameters are stacked on a leading member axis
(`stack_parameters`), and their data are padded to one (B, n_max, d) tensor with a boolean
mask. Member b's loss is the specs' L_b = (1 / 2 n_b) sum_{i <= n_b} |f(x_bi) - y_bi|^2.

`gradient_descent` is plain full-batch GD on every member at once (`torch.func.vmap` of
`functional_call`, so any `nn.Module` works); `gauss_newton` polishes to machine precision
with Levenberg-Marquardt steps in their minimum-norm form, delta = J^T (J J^T + mu I)^-1 e,
which for n_b below the parameter count moves to the nearest interpolating point to first order
(the specs ask for a loss near 1e-20 to tell exact recovery from a nearby non-generalizing
minimum, which GD alone does not reach in a CPU budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, stack_module_state, vmap

Params = dict[str, Tensor]


@dataclass
class BatchedFit:
    """Final stacked parameters, final losses (B,), the loss history (T, B) at `steps` (T,), and which
    members diverged (a non-finite loss or one above max_loss: their parameters are frozen there)."""

    params: Params
    loss: np.ndarray
    steps: np.ndarray
    history: np.ndarray
    diverged: np.ndarray


def stack_parameters(models: Sequence[nn.Module]) -> Params:
    """The trainable parameters of same-shaped models stacked on a leading member axis (detached copies)."""
    if not models:
        raise ValueError("stack_parameters: give at least one model")
    params, _ = stack_module_state(list(models))
    return {name: p.detach().clone() for name, p in params.items() if p.requires_grad}


def member_parameters(params: Params, b: int) -> Params:
    """Member b's parameters (views)."""
    return {name: p[b] for name, p in params.items()}


def pad_samples(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Per-member samples (n_b, d) and targets (n_b, k) -> padded x (B, n_max, d), y (B, n_max, k), mask (B, n_max)."""
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"pad_samples: need as many targets as inputs (>= 1), got {len(xs)} and {len(ys)}")
    n_max = max(x.shape[0] for x in xs)
    first_x, first_y = xs[0], ys[0].reshape(ys[0].shape[0], -1)
    x = first_x.new_zeros((len(xs), n_max, first_x.shape[1]))
    y = first_y.new_zeros((len(xs), n_max, first_y.shape[1]))
    mask = torch.zeros(len(xs), n_max, dtype=torch.bool)
    for b, (xb, yb) in enumerate(zip(xs, ys)):
        n = xb.shape[0]
        x[b, :n], y[b, :n], mask[b, :n] = xb, yb.reshape(n, -1), True
    return x, y, mask


def batched_outputs(model: nn.Module, params: Params, x: Tensor) -> Tensor:
    """f_b(x_b) for every member: params stacked (B, ...), x (B, n, d) -> (B, n, out)."""
    return vmap(lambda p, xb: functional_call(model, p, (xb,)))(params, x)


def member_losses(model: nn.Module, params: Params, x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """L_b = (1 / 2 n_b) sum over member b's (unmasked) points of |f - y|^2, shape (B,)."""
    err = (batched_outputs(model, params, x) - y) ** 2
    per_point = err.sum(-1) * mask.to(err.dtype)
    return per_point.sum(-1) / (2 * mask.sum(-1).clamp(min=1).to(err.dtype))


def gradient_descent(model: nn.Module, params: Params, x: Tensor, y: Tensor, mask: Tensor, *, lr: float,
                     steps: int, record_every: int = 100, max_loss: float = 1e8) -> BatchedFit:
    """`steps` full-batch GD steps theta_b <- theta_b - lr grad L_b(theta_b) for every member at once.

    The gradient of sum_b L_b is every member's own gradient (the members share nothing). The loss
    is recorded at step 0, every `record_every` steps and at the end."""
    if lr <= 0 or steps < 0 or record_every < 1:
        raise ValueError(f"gradient_descent: need lr > 0, steps >= 0, record_every >= 1; got lr={lr}, "
                         f"steps={steps}, record_every={record_every}")
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    live = torch.ones(mask.shape[0], dtype=torch.bool)
    recorded_steps, history = [], []
    for step in range(steps + 1):
        losses = member_losses(model, params, x, y, mask)
        values = losses.detach()
        bad = ~torch.isfinite(values) | (values > max_loss)
        live &= ~bad
        if step % record_every == 0 or step == steps:
            recorded_steps.append(step)
            history.append(values.clone())
        if step == steps:
            break
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                keep = live.reshape(-1, *[1] * (g.ndim - 1)).to(g.dtype)
                p -= lr * torch.nan_to_num(g) * keep
    final = {k: v.detach() for k, v in params.items()}
    return BatchedFit(final, history[-1].numpy(), np.array(recorded_steps), torch.stack(history).numpy(),
                      (~live).numpy())


def gauss_newton(model: nn.Module, params: Params, x: Tensor, y: Tensor, mask: Tensor, *, iterations: int = 50,
                 tol: float = 1e-28, damping: float = 1e-12) -> BatchedFit:
    """Levenberg-Marquardt polishing of every member: delta_b = J_b^T (J_b J_b^T + mu_b I)^-1 e_b on
    the member's own residuals e_b (masked points contribute zero rows), accepted when L_b falls
    (then mu_b / 10, floored at `damping`), else mu_b x 10 and retried next iteration. Stops when
    every member's loss is below `tol` or after `iterations`."""
    names = list(params)
    shapes = [params[k].shape[1:] for k in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def unflat(theta: Tensor) -> Params:
        return {k: t.reshape(s) for k, t, s in zip(names, theta.split(sizes), shapes)}

    def residuals(theta: Tensor, xb: Tensor, yb: Tensor, mb: Tensor) -> Tensor:
        f = functional_call(model, unflat(theta), (xb,))
        return ((f - yb) * mb[:, None].to(f.dtype)).reshape(-1)

    theta = torch.cat([params[k].reshape(params[k].shape[0], -1) for k in names], dim=1).detach().clone()
    res_fn = vmap(residuals)
    jac_fn = vmap(jacrev(residuals))
    n_b = mask.sum(-1).clamp(min=1).to(theta.dtype)
    e = res_fn(theta, x, y, mask)
    loss = (e ** 2).sum(-1) / (2 * n_b)
    mu = torch.full_like(loss, 1e-6) * (1 + loss)
    history, recorded = [loss.clone()], [0]
    for it in range(1, iterations + 1):
        if bool((loss < tol).all()):
            break
        J = jac_fn(theta, x, y, mask)  # (B, n*out, P)
        eye = torch.eye(J.shape[1], dtype=J.dtype)
        gram = J @ J.transpose(1, 2) + mu[:, None, None] * eye
        step = (J.transpose(1, 2) @ torch.linalg.solve(gram, e[..., None]))[..., 0]
        trial = theta - step
        e_new = res_fn(trial, x, y, mask)
        loss_new = (e_new ** 2).sum(-1) / (2 * n_b)
        better = torch.isfinite(loss_new) & (loss_new < loss)
        theta = torch.where(better[:, None], trial, theta)
        e = torch.where(better[:, None], e_new, e)
        loss = torch.where(better, loss_new, loss)
        mu = torch.where(better, (mu / 10).clamp(min=damping), mu * 10)
        history.append(loss.clone())
        recorded.append(it)
    final = {k: t.reshape(-1, *s) for k, t, s in zip(names, theta.split(sizes, dim=1), shapes)}
    return BatchedFit(final, loss.numpy(), np.array(recorded), torch.stack(history).numpy(),
                      (~torch.isfinite(loss)).numpy())
