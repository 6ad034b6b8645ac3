"""Hessian of the training loss: Hessian-vector products and the probe ``hessian``.

H = nabla^2_theta L(theta), L(theta) = loss(f(x; theta), y), over all trainable parameters of
any ``nn.Module`` (flattened in the order of ``model.named_parameters()``). Its top eigenvalues
(the sharpness, lambda_max), trace and spectral density come from `phenolab.probes.lanczos`
(Sagun et al., arXiv:1706.04454; Ghorbani et al., arXiv:1901.10159; Yao et al. PyHessian,
arXiv:1912.07145).

The HVP reuses one double-backward graph: g = dL/dtheta is built once with
``create_graph=True`` on detached copies of the parameters (through
``torch.func.functional_call``), and each H v = d(g . v)/dtheta is one backward pass through
that graph (reverse-over-reverse). On the benchmark MLP (benchmarks/hessian.py: 68,865
parameters, 2048 samples, one CPU thread) this costs 25 ms per HVP in float32 (50 ms in
float64): the same as a ``torch.func.vjp(grad(L))`` linearized once and reused, and 1.6-1.8x
faster than calling ``vjp(grad(L))`` per product (42 / 90 ms), which redoes the forward and
backward each time. Plain autograd also keeps the user's model out of function transforms, and
``F.mse_loss`` works (its forward-over-reverse ``jvp(grad)`` fails in torch 2.13).

Small models (at most `SPECTRUM_MAX_PARAMS` parameters) also get the whole spectrum: the dense
Hessian from the HVPs on all n basis vectors through the same graph, 16 per batched backward
pass (`hessian_matrix`, the probe's ``spectrum=True``). On the hessian-outliers experiment's
widest net (10-32-32-8 ReLU, 1672 parameters, 1000 samples, one CPU thread) that is about 3 s
in float64 and 2 s in float32; batching barely changes one thread's time (the HVPs are bound by
memory traffic) but is up to 10x faster than one HVP at a time when two threads contend.
"""

from __future__ import annotations

from typing import Callable, Literal, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from phenolab.config import OBJECTIVE_KINDS, ConfigError
from phenolab.objectives import cross_entropy, make_objective, mse  # noqa: F401  (mse, cross_entropy: re-exported)
from phenolab.probes.lanczos import Matvec, hutchinson_trace, lanczos, slq_density
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

LossFn = Callable[[Tensor, Tensor], Tensor]
LossName = Literal["mse", "half_mse", "cross_entropy"]


def _parameters(
    model: nn.Module, params: Mapping[str, Tensor] | None
) -> tuple[list[tuple[str, Tensor]], dict[str, Tensor]]:
    """(name, value) of the trainable parameters, and the frozen ones (name -> value); values
    from `params` where it names them."""
    named = list(model.named_parameters())
    if params is not None:
        known = {name for name, _ in named}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"params: {unknown} are not parameters of the model; known: {sorted(known)}")
    values = [(name, params.get(name, p) if params is not None else p, p.requires_grad) for name, p in named]
    trainable = [(name, value) for name, value, flag in values if flag]
    if not trainable:
        raise ValueError("the model has no trainable parameters (none with requires_grad)")
    return trainable, {name: value for name, value, flag in values if not flag}


def _floating(t: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)


def hvp_operator(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    dtype: torch.dtype | None = None,
    params: Mapping[str, Tensor] | None = None,
) -> tuple[Matvec, int]:
    """Hessian-vector products v -> H v of L(theta) = loss_fn(model(x; theta), y).

    theta: the model's trainable parameters (``requires_grad``), flattened and concatenated in
    the order of ``model.named_parameters()``; ``params`` (name -> tensor) replaces some of
    their values (e.g. a reference point). ``dtype`` (e.g. ``torch.float64`` for accurate
    spectra) casts copies of all parameters, floating buffers and floating data; None keeps the
    parameters' dtype and casts x to it. The model's forward runs once, in eval mode (dropout
    off, batch-norm running statistics), with each submodule's ``training`` flag restored; the
    model, its ``.grad`` and its buffers are never modified.

    Returns ``(matvec, n)``: matvec takes a vector (n,) of any floating dtype and returns H v
    (n,) in the working dtype; reverse-over-reverse on one reused graph (see the module doc).
    """
    grads, leaves = _hessian_graph(model, loss_fn, x, y, dtype=dtype, params=params)
    return _double_backward(grads, leaves), sum(leaf.numel() for leaf in leaves)


def _hessian_graph(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    dtype: torch.dtype | None,
    params: Mapping[str, Tensor] | None,
) -> tuple[list[Tensor | None], list[Tensor]]:
    """(g = dL/dtheta with its graph retained, the leaves theta): what `hvp_operator` and
    `hessian_matrix` differentiate again."""
    named, frozen = _parameters(model, params)
    device = named[0][1].device
    dtype = dtype or named[0][1].dtype
    leaves = [_floating(value.detach(), dtype, device).clone().requires_grad_(True) for _, value in named]
    fixed = [*model.named_buffers(), *frozen.items()]
    constants = {name: _floating(t.detach(), dtype, device) for name, t in fixed}
    values = {**constants, **{name: leaf for (name, _), leaf in zip(named, leaves)}}
    x, y = (_floating(torch.as_tensor(t), dtype, device) for t in (x, y))
    return _gradient_graph(model, loss_fn, x, y, values, leaves), leaves


def _double_backward(grads: list[Tensor | None], leaves: list[Tensor]) -> Matvec:
    """v -> H v = d(g . v)/dtheta: one backward pass through the retained graph of g = dL/dtheta.
    Gradients that do not depend on theta (or unused parameters) contribute zero rows."""
    shapes, sizes = [leaf.shape for leaf in leaves], [leaf.numel() for leaf in leaves]
    linked = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def matvec(v: Tensor) -> Tensor:
        v = v.to(device=leaves[0].device, dtype=leaves[0].dtype)
        chunks = [c.reshape(s) for c, s in zip(v.split(sizes), shapes)]
        out = [torch.zeros_like(leaf) for leaf in leaves]
        if linked:
            hv = torch.autograd.grad(
                [grads[i] for i in linked], leaves, grad_outputs=[chunks[i] for i in linked],  # type: ignore[arg-type]
                retain_graph=True, allow_unused=True,
            )
            out = [h if h is not None else o for h, o in zip(hv, out)]
        return torch.cat([o.reshape(-1) for o in out])

    return matvec


SPECTRUM_MAX_PARAMS = 5000
"""The most trainable parameters for which `hessian_matrix` (and the probe's ``spectrum=True``)
builds the dense Hessian: n HVPs, n^2 floats (200 MB in float64 at 5000) and an O(n^3)
eigendecomposition. Larger models: top eigenvalues by Lanczos (``k``), or ``density=True`` (SLQ)."""


def hessian_matrix(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    dtype: torch.dtype | None = None,
    params: Mapping[str, Tensor] | None = None,
    max_params: int = SPECTRUM_MAX_PARAMS,
    chunk: int = 16,
) -> Tensor:
    """The dense Hessian H (n, n) of L(theta) = loss_fn(model(x; theta), y), symmetrized.

    Built row by row from the HVPs H e_i on the basis vectors of the parameters (the same
    double-backward graph as `hvp_operator`, same theta, ``dtype`` and ``params`` rules),
    `chunk` basis vectors per backward pass (``is_grads_batched``; one at a time where the
    model has an operation without a batching rule), then (H + H^T) / 2. Refuses (ValueError)
    models with more than `max_params` trainable parameters, before any work.
    """
    named, _ = _parameters(model, params)
    n = sum(value.numel() for _, value in named)
    if n > max_params:
        raise ValueError(
            f"spectrum: the dense Hessian is limited to {max_params} trainable parameters (n^2 memory, "
            f"n Hessian-vector products, an O(n^3) eigendecomposition); this model has {n}. For larger "
            "models use the top eigenvalues (k, by Lanczos) or the spectral density (density=True, SLQ)")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    grads, leaves = _hessian_graph(model, loss_fn, x, y, dtype=dtype, params=params)
    rows = _basis_products(grads, leaves, chunk)
    return (rows + rows.T) / 2


def _basis_products(grads: list[Tensor | None], leaves: list[Tensor], chunk: int) -> Tensor:
    """The matrix whose row i is H e_i, `chunk` rows per batched backward pass."""
    shapes, sizes = [leaf.shape for leaf in leaves], [leaf.numel() for leaf in leaves]
    n, dtype, device = sum(sizes), leaves[0].dtype, leaves[0].device
    linked = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    rows = torch.zeros(n, n, dtype=dtype, device=device)
    if not linked:
        return rows
    matvec = _double_backward(grads, leaves)
    batched = chunk > 1
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if batched:
            basis = torch.zeros(stop - start, n, dtype=dtype, device=device)
            basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
            parts = [c.reshape(stop - start, *s) for c, s in zip(basis.split(sizes, dim=1), shapes)]
            try:
                hv = torch.autograd.grad(
                    [grads[i] for i in linked], leaves, grad_outputs=[parts[i] for i in linked],  # type: ignore[arg-type]
                    retain_graph=True, allow_unused=True, is_grads_batched=True,
                )
            except RuntimeError:  # an operation without a batching rule: one product at a time
                batched = False
            else:
                for leaf, h, offset in zip(leaves, hv, np.cumsum([0, *sizes[:-1]])):
                    if h is not None:
                        rows[start:stop, offset:offset + leaf.numel()] = h.reshape(stop - start, -1)
                continue
        for i in range(start, stop):
            e = torch.zeros(n, dtype=dtype, device=device)
            e[i] = 1.0
            rows[i] = matvec(e)
    return rows


def _gradient_graph(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, values: dict[str, Tensor], leaves: list[Tensor]
) -> list[Tensor | None]:
    """dL/dtheta with ``create_graph=True`` (one forward and backward), in eval mode."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            loss = loss_fn(functional_call(model, values, (x,)), y)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor")
            return list(torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True))
    finally:
        for module, flag in flags:
            module.training = flag


class _Counted:
    """A matvec that counts its calls."""

    def __init__(self, matvec: Matvec) -> None:
        self.matvec = matvec
        self.calls = 0

    def __call__(self, v: Tensor) -> Tensor:
        self.calls += 1
        return self.matvec(v)


def _loss(loss: LossName | LossFn | None, task: Task) -> LossFn:
    if callable(loss):
        return loss
    name = loss or ("cross_entropy" if task.kind == "classification" else "mse")
    try:
        return make_objective(name).on_outputs
    except ConfigError:
        raise ValueError(f"loss must be an objective name ({', '.join(OBJECTIVE_KINDS.kinds())}) or a callable "
                         f"(output, target) -> scalar, got {name!r}") from None


def _subsample(task: Task, points: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """The training set, or `points` samples of it drawn without replacement (order kept)."""
    x, y = task.x_train, task.y_train
    if points is None or points >= len(x):
        return x, y
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    generator = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(x), generator=generator)[:points].sort().values
    return x[idx.to(x.device)], y[idx.to(y.device)]


@register_probe("hessian")
def hessian_probe(
    model: nn.Module,
    task: Task,
    *,
    loss: LossName | LossFn | None = None,
    k: int = 1,
    trace: bool = False,
    density: bool = False,
    points: int | None = None,
    float64: bool = True,
    seed: int = 0,
    vectors: bool = False,
    tol: float = 1e-8,
    iters: int | None = None,
    trace_samples: int = 100,
    density_probes: int = 5,
    density_steps: int = 80,
    density_grid: np.ndarray | None = None,
    density_sigma: float | None = None,
    spectrum: bool = False,
) -> ProbeResult:
    """Top eigenvalues, and optionally trace and spectral density, of the training-loss Hessian.

    L = mean over the training set (or `points` samples of it, drawn with `seed`) of ``loss``:
    "mse" (default for regression; mean (f - y)^2, no 1/2), "cross_entropy" (default for
    classification) or a callable (output, target) -> scalar. ``float64`` (default) computes in
    float64 copies. Top-k by `lanczos` (``tol``, ``iters``); trace by `hutchinson_trace`
    (``trace_samples`` Rademacher probes); density by `slq_density` (``density_probes`` x
    ``density_steps`` HVPs; a fixed ``density_grid`` and ``density_sigma`` keep densities of
    different steps comparable, by default both adapt to the Ritz values).
    ``spectrum=True`` builds the dense Hessian from n HVPs on the basis vectors
    (`hessian_matrix`, at most `SPECTRUM_MAX_PARAMS` parameters, else ValueError before any
    work) and returns all its eigenvalues (``torch.linalg.eigvalsh``, float64); the top-k, trace and density
    then use products with that matrix, so ``hvps`` = n.

    Keys: ``top_0`` .. ``top_{k-1}`` (descending), ``top`` (k,), ``hvps`` (HVPs used in all),
    ``residual`` (largest Ritz residual of the top k over |H|_est; <= tol when converged);
    with ``trace``: ``trace``, ``trace_stderr``; with ``density``: ``density_grid``,
    ``density``; with ``vectors``: ``top_eigenvector`` (n,) float64, unit norm, parameters
    flattened in ``model.named_parameters()`` order, largest-magnitude entry positive; with
    ``spectrum``: ``spectrum`` (n,) float64, every eigenvalue, ascending.
    """
    x, y = _subsample(task, points, seed)
    dtype = torch.float64 if float64 else None
    device = next(p.device for p in model.parameters() if p.requires_grad)
    eigenvalues = None
    if spectrum:
        dense = hessian_matrix(model, _loss(loss, task), x, y, dtype=dtype)
        n = dense.shape[0]
        # torch's eigvalsh, not numpy's: numpy's BLAS threads contend with torch's (10x slower here)
        eigenvalues = torch.linalg.eigvalsh(dense.detach().to(torch.float64)).cpu().numpy()
        matvec = _Counted(lambda v: dense @ v.to(dense.dtype))
    else:
        base, n = hvp_operator(model, _loss(loss, task), x, y, dtype=dtype)
        matvec = _Counted(base)
    values, vecs, info = lanczos(matvec, n, k, iters=iters, tol=tol, seed=seed, device=device)
    out: ProbeResult = {f"top_{i}": float(v) for i, v in enumerate(values)}
    out["top"] = values.cpu().numpy()
    out["residual"] = float(np.max(info["residuals"]) / info["norm_estimate"])
    if vectors:
        out["top_eigenvector"] = vecs[:, 0].cpu().numpy()
    if trace:
        estimate, stderr = hutchinson_trace(matvec, n, samples=trace_samples, seed=seed, device=device)
        out["trace"], out["trace_stderr"] = estimate, stderr
    if density:
        out["density_grid"], out["density"] = slq_density(
            matvec, n, probes=density_probes, steps=density_steps, grid=density_grid, sigma=density_sigma,
            seed=seed, device=device,
        )
    if eigenvalues is not None:
        out["spectrum"] = eigenvalues
    out["hvps"] = float(n if spectrum else matvec.calls)
    return out



def central_difference_hessian(gradient: Callable[[np.ndarray], np.ndarray], theta: np.ndarray,
                               h: float) -> np.ndarray:
    """The Hessian by central differences of a gradient function: column i is (g(theta + h e_i) -
    g(theta - h e_i)) / 2h, then the matrix is symmetrized, (H + H^T) / 2. A check of the exact
    `hessian_matrix` as the theory protocols compute it (error O(h^2) plus rounding O(eps / h))."""
    theta = np.asarray(theta)
    cols = []
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = h
        plus, minus = gradient(theta + step), gradient(theta - step)
        cols.append((plus - minus) / (2 * h))
    H = np.stack(cols, axis=1)
    return (H + H.T) / 2
