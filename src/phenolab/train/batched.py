"""Many small networks, each with its own training set, trained in one batched computation.

The recovery experiments (optimistic sample size, single-neuron recovery, local recovery) train
hundreds of tiny networks that differ in seed, initialization and *sample*: each member b has
its own n_b training points. The members share one architecture (`model`, whose parameters
are replaced, never modified), their parameters are stacked on a leading member axis
(`stack_parameters`), and their data are padded to one (B, n_max, d) tensor with a boolean
mask. Member b's loss is the protocols' L_b = (1 / 2 n_b) sum_{i <= n_b} |f(x_bi) - y_bi|^2.

`gradient_descent` is plain full-batch GD on every member at once (`torch.func.vmap` of
`functional_call`, so any `nn.Module` works; a two-layer chain such as phenolab's two-layer `MLP` takes a
hand-written backward pass with batched einsums, about 3x faster, `two_layer_gradients`); `gauss_newton` polishes
to machine precision with Levenberg-Marquardt steps in their minimum-norm form, delta = J^T (J J^T + mu I)^-1 e,
which for n_b below the parameter count moves to the nearest interpolating point to first order
(docs/specs/recovery.md asks for a loss near 1e-20 to tell exact recovery from a nearby non-generalizing
minimum, which GD alone does not reach in a CPU budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, stack_module_state, vmap

from phenolab.models.chain import Affine, Elementwise, Scale, layer_chain

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


@dataclass(frozen=True)
class TwoLayer:
    """A two-layer chain f = s (m_2 sigma(m_1 W x + beta_1 b) a^T + beta_2 c), read from the model's
    layer chain (`phenolab.models.chain`): what the hand-written gradients need."""

    first: Affine
    sigma: Callable[[Tensor], Tensor]
    second: Affine
    scale: float


def two_layer_chain(model: nn.Module, params: Params) -> TwoLayer | None:
    """The model as a `TwoLayer` when `two_layer_gradients` computes its gradients: its layer chain
    is affine, elementwise, affine (then an optional scale), it holds no buffers (a centred net's
    reference output), and `params` are exactly its parameters, all trained. Else None."""
    chain = layer_chain(model)
    if chain is None:
        return None
    scale = chain[-1].scale if isinstance(chain[-1], Scale) else 1.0
    body = chain[:-1] if isinstance(chain[-1], Scale) else chain
    if [type(op) for op in body] != [Affine, Elementwise, Affine] or any(True for _ in model.buffers()):
        return None
    first, act, second = body
    named = dict(model.named_parameters())
    if set(params) != set(named) or not all(p.requires_grad for p in named.values()):
        return None
    return TwoLayer(first, act.fn, second, scale)  # type: ignore[union-attr, arg-type]


def two_layer_applies(model: nn.Module, params: Params) -> bool:
    """Whether `two_layer_gradients` computes this model's gradients (`two_layer_chain`)."""
    return two_layer_chain(model, params) is not None


def two_layer_gradients(model: nn.Module, params: Params, x: Tensor, y: Tensor, mask: Tensor) -> tuple[Tensor, Params]:
    """Losses L_b (B,) and their gradients for a two-layer chain (`two_layer_chain`, e.g. a
    two-layer `MLP`), by hand with batched einsums.

    f = s (m_2 h a^T + beta_2 c), h = sigma(z), z = m_1 x W^T + beta_1 b (s the output scale, m_l the
    layers' multipliers, beta_l their bias multipliers); with r = (f - y) mask / n_b:
    dL/da = s m_2 r^T h, dL/dc = s beta_2 sum r, dL/dz = s m_2 (r a) sigma'(z), dL/dW = m_1 (dL/dz)^T x,
    dL/db = beta_1 sum dL/dz. sigma' is 1 - tanh^2 for tanh, else from one forward-mode pass (`torch.func.jvp`).
    """
    net = two_layer_chain(model, params)
    if net is None:
        raise ValueError(f"two_layer_gradients needs a two-layer chain with every parameter trained; "
                         f"got {type(model).__name__}")
    one, two = net.first, net.second
    m1, m2, s, sigma = one.mult, two.mult, net.scale, net.sigma
    W, a = params[f"{one.prefix}.weight"], params[f"{two.prefix}.weight"]
    b, c = params.get(f"{one.prefix}.bias"), params.get(f"{two.prefix}.bias")
    z = m1 * torch.einsum("bnd,bmd->bnm", x, W)
    if b is not None:
        z = z + one.bias_mult * b[:, None, :]
    if sigma is torch.tanh:
        h = torch.tanh(z)
        dh = 1 - h * h
    else:
        # torch types jvp's result as a pair or (with has_aux) a triple; without has_aux it is the pair
        h, dh = cast(tuple[Tensor, Tensor], jvp(sigma, (z,), (torch.ones_like(z),)))
    f = s * m2 * torch.einsum("bnm,bom->bno", h, a)
    if c is not None:
        f = f + s * two.bias_mult * c[:, None, :]
    n_b = mask.sum(-1).clamp(min=1).to(f.dtype)
    keep = mask.to(f.dtype)[..., None]
    diff = (f - y) * keep
    losses = (diff ** 2).sum((1, 2)) / (2 * n_b)
    r = diff / n_b[:, None, None]
    grads = {f"{two.prefix}.weight": s * m2 * torch.einsum("bno,bnm->bom", r, h)}
    gz = s * m2 * torch.einsum("bno,bom->bnm", r, a) * dh
    grads[f"{one.prefix}.weight"] = m1 * torch.einsum("bnm,bnd->bmd", gz, x)
    if b is not None:
        grads[f"{one.prefix}.bias"] = one.bias_mult * gz.sum(1)
    if c is not None:
        grads[f"{two.prefix}.bias"] = s * two.bias_mult * r.sum(1)
    return losses, grads


def _autograd_gradients(model: nn.Module, params: Params, x: Tensor, y: Tensor, mask: Tensor) -> tuple[Tensor, Params]:
    live = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    losses = member_losses(model, live, x, y, mask)
    grads = torch.autograd.grad(losses.sum(), list(live.values()))
    return losses.detach(), dict(zip(live, grads))


def gradient_descent(model: nn.Module, params: Params, x: Tensor, y: Tensor, mask: Tensor, *, lr: float,
                     steps: int, record_every: int = 100, max_loss: float = 1e8) -> BatchedFit:
    """`steps` full-batch GD steps theta_b <- theta_b - lr grad L_b(theta_b) for every member at once.

    The gradient of sum_b L_b is every member's own gradient (the members share nothing). The loss
    is recorded at step 0, every `record_every` steps and at the end."""
    if lr <= 0 or steps < 0 or record_every < 1:
        raise ValueError(f"gradient_descent: need lr > 0, steps >= 0, record_every >= 1; got lr={lr}, "
                         f"steps={steps}, record_every={record_every}")
    params = {k: v.detach().clone() for k, v in params.items()}
    gradients = two_layer_gradients if two_layer_applies(model, params) else _autograd_gradients
    live = torch.ones(mask.shape[0], dtype=torch.bool)
    recorded_steps, history = [], []
    for step in range(steps + 1):
        with torch.no_grad() if gradients is two_layer_gradients else torch.enable_grad():
            values, grads = gradients(model, params, x, y, mask)
        ok = torch.isfinite(values) & (values <= max_loss)
        all_live = bool(ok.all()) and bool(live.all())
        live &= ok
        if step % record_every == 0 or step == steps:
            recorded_steps.append(step)
            history.append(values.clone())
        if step == steps:
            break
        with torch.no_grad():
            for name, p in params.items():
                g = grads[name]
                if all_live:
                    p.sub_(g, alpha=lr)
                else:  # ended members keep their parameters
                    keep = live.reshape(-1, *[1] * (g.ndim - 1)).to(g.dtype)
                    p -= lr * torch.nan_to_num(g) * keep
    return BatchedFit(params, history[-1].numpy(), np.array(recorded_steps), torch.stack(history).numpy(),
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
