"""Batched full-batch gradient descent on matrix factorizations W = U_1 ... U_L for matrix completion.

Targets, masks and the measurements of a learned matrix live in `phenolab.tasks.matrix_completion`;
this module only trains (arXiv:2405.13721, 2211.11623; protocol in docs/specs/matrix-completion.md).

    from phenolab.tasks.matrix_completion import block_mask, low_rank_target
    M = low_rank_target(4, 4, 1, seed)
    mask = block_mask(4, [([0, 1], [0, 1]), ([2, 3], [2, 3])])
    out = train_factorizations(M[None], mask[None], init_std=1e-3, lr=0.05, steps=40_000, seed=0)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal, Sequence, cast

import numpy as np
import torch

__all__ = ["loss_plateaus", "train_factorizations"]


# ----------------------------------------------------------------------------------------------
# batched gradient descent on matrix factorizations

def _factor_shapes(d1: int, d2: int, width: int, depth: int) -> list[tuple[int, int]]:
    return [(d1, d2)] if depth == 1 else [(d1, width), *[(width, width)] * (depth - 2), (width, d2)]


def _product(factors: list[torch.Tensor]) -> torch.Tensor:
    w = factors[0]
    for u in factors[1:]:
        w = torch.bmm(w, u)
    return w


def _svdvals(x: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """Singular values of a stack, NaN for the members that are not finite."""
    out = torch.full((x.shape[0], min(x.shape[1:])), math.nan, dtype=x.dtype)
    if finite.any():
        out[finite] = torch.linalg.svdvals(x[finite])
    return out


def train_factorizations(targets: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, *, depth: int = 2,
                         width: int | None = None, init_std: float | Sequence[float], lr: float, steps: int, seed: int,
                         record_steps: Iterable[int] | None = None, reduction: Literal["sum", "mean"] = "sum",
                         rank_rtol: float = 1e-3) -> dict[str, Any]:
    """Full-batch gradient descent on B matrix factorizations W_b = U_1 ... U_L at once, float64.

    Loss of run b (``reduction="sum"``, the default):  L_b = (1/2) sum_{(i,j) in Omega_b} (W_ij - M_ij)^2;
    ``reduction="mean"`` divides by n_b = |Omega_b|. Step: U_l <- U_l - lr dL_b/dU_l for all l at once,
    with dL/dU_l = (U_1..U_{l-1})^T R (U_{l+1}..U_L)^T and R = P_Omega(W - M) (/ n_b), in batched
    matmuls over the B runs (gradients written by hand, no autograd). The matrix-completion protocol's
    setup (d = 4, lr 0.05, 40k steps, init std 1e-6) uses the sum: lr 0.05 is then stable on its targets
    and the runs converge (loss ~1e-29) within 40k steps. The mean reaches the same end points (the
    same gradient flow, slowed by n_b) but leaves some runs unconverged after 40k steps.

    Initialization matches `phenolab.models.MatrixFactorization`: run b draws its factors, in order,
    as init_std * N(0, 1) from ``torch.Generator().manual_seed(seed + b)``, where init_std is one
    number or one per run (an init-scale sweep in one call); shapes (d_1, k),
    (k, k) x (L - 2), (k, d_2) with k = width or min(d_1, d_2); L = 1 trains W itself.

    targets and masks are (B, d_1, d_2) (one of them may be (d_1, d_2), shared by all runs).
    record_steps (default: 0 and steps) are the steps t (0 = init, t = after t updates) at which the
    loss and singular values are recorded. Returns numpy arrays (``factors``: a list of them):

    - steps (T,); W (B, d_1, d_2) final; factors: list of (B, ...) final factors;
    - loss (B, T), grad_norm (B, T) (Frobenius norm of the gradient over all factors),
      singular_values (B, T, min(d_1, d_2)) of W; final_loss (B,);
    - for L = 2 with A = U_1, B = U_2: sv_A, sv_Bt, sv_aug (B, T, min(rows, k)), the singular values of
      A, B^T and W_aug = [A; B^T], and rank_A, rank_Bt, rank_aug (B, T): #{sigma_i > rank_rtol sigma_1}
      (-1 once diverged);
    - diverged (B,) bool: the loss became non-finite (NaN stays NaN, so this is the final state);
      its recorded values turn NaN from then on.
    """
    m = torch.as_tensor(targets, dtype=torch.float64)
    mask = torch.as_tensor(masks).to(torch.bool)
    if m.ndim == 2 and mask.ndim == 2:
        raise ValueError("targets and masks: at least one must be a (B, d1, d2) stack")
    if m.ndim not in (2, 3) or mask.ndim not in (2, 3):
        raise ValueError(f"targets and masks: must be (B, d1, d2) or (d1, d2), got {tuple(m.shape)} and "
                         f"{tuple(mask.shape)}")
    m, mask = torch.broadcast_tensors(m if m.ndim == 3 else m[None], mask if mask.ndim == 3 else mask[None])
    m, mask = m.contiguous(), mask.contiguous()
    n_runs, d1, d2 = m.shape
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1, got {depth!r}")
    k = min(d1, d2) if width is None else width
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"width: must be an integer >= 1, got {width!r}")
    stds = np.asarray(init_std, dtype=np.float64)
    if stds.ndim == 0:
        stds = np.full(n_runs, float(stds))
    if stds.shape != (n_runs,) or not np.all(stds > 0):
        raise ValueError(f"init_std: must be > 0, one number or one per run ({n_runs}), got {init_std!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: must be an integer >= 0, got {steps!r}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction: must be 'sum' or 'mean', got {reduction!r}")
    if not torch.isfinite(m[mask]).all():
        raise ValueError("targets: observed entries must be finite")
    record = sorted({0, steps} if record_steps is None else {int(t) for t in record_steps})
    if record and not 0 <= record[0] <= record[-1] <= steps:
        raise ValueError(f"record_steps: must lie in [0, {steps}], got {record[0]}..{record[-1]}")

    # R = weight * (W - M): weight = mask (sum) or mask / n_b (mean); unobserved positions weigh 0
    weight = mask.to(torch.float64)
    if reduction == "mean":
        weight = weight / weight.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    m = torch.where(mask, m, torch.zeros((), dtype=torch.float64))  # unobserved targets play no role
    shapes = _factor_shapes(d1, d2, k, depth)
    generators = [torch.Generator().manual_seed(seed + b) for b in range(n_runs)]
    factors = [torch.empty((n_runs, *s), dtype=torch.float64) for s in shapes]
    for b, gen in enumerate(generators):
        for u, s in zip(factors, shapes):
            u[b] = float(stds[b]) * torch.randn(s, generator=gen, dtype=torch.float64)

    n_rec, k_sv = len(record), min(d1, d2)
    loss = torch.full((n_runs, n_rec), math.nan, dtype=torch.float64)
    grad_norm = torch.full((n_runs, n_rec), math.nan, dtype=torch.float64)
    sv = torch.full((n_runs, n_rec, k_sv), math.nan, dtype=torch.float64)
    factor_sv = {name: torch.full((n_runs, n_rec, min(rows, k)), math.nan, dtype=torch.float64)
                 for name, rows in (("sv_A", d1), ("sv_Bt", d2), ("sv_aug", d1 + d2))} if depth == 2 else {}

    w = torch.empty((n_runs, d1, d2), dtype=torch.float64)
    r = torch.empty_like(w)
    grads = [torch.empty_like(u) for u in factors]
    next_rec = 0
    with torch.no_grad():
        for t in range(steps + 1):
            # forward: W and the weighted residual R
            if depth == 2:
                torch.bmm(factors[0], factors[1], out=w)
            else:
                w = _product(factors)
            torch.sub(w, m, out=r)
            r.mul_(weight)
            # backward: dL/dU_l = prefix^T R suffix^T (prefix = U_1..U_{l-1}, suffix = U_{l+1}..U_L)
            if depth == 1:
                grads[0].copy_(r)
            elif depth == 2:
                torch.bmm(r, factors[1].transpose(1, 2), out=grads[0])
                torch.bmm(factors[0].transpose(1, 2), r, out=grads[1])
            else:
                suffix: list[torch.Tensor | None] = [None] * depth
                for layer in range(depth - 2, -1, -1):
                    nxt, after = factors[layer + 1], suffix[layer + 1]
                    suffix[layer] = nxt if after is None else torch.bmm(nxt, after)
                prefix: torch.Tensor | None = None
                for layer in range(depth):
                    g = r if prefix is None else torch.bmm(prefix.transpose(1, 2), r)
                    after = suffix[layer]
                    grads[layer] = g if after is None else torch.bmm(g, after.transpose(1, 2))
                    prefix = factors[layer] if prefix is None else torch.bmm(prefix, factors[layer])
            if next_rec < n_rec and record[next_rec] == t:
                # L_b = (1/2) sum_ij weight_ij (W_ij - M_ij)^2 = (1/2) sum R^2 / weight over Omega_b
                loss[:, next_rec] = 0.5 * (r * (w - m)).sum(dim=(1, 2))
                # sum() starts from the int 0, a Tensor after the first term (grads is never empty)
                grad_norm[:, next_rec] = torch.sqrt(cast(torch.Tensor, sum((g * g).sum(dim=(1, 2)) for g in grads)))
                finite = torch.isfinite(loss[:, next_rec]) & torch.isfinite(w).all(dim=(1, 2))
                sv[:, next_rec] = _svdvals(w, finite)
                if depth == 2:
                    a, bt = factors[0], factors[1].transpose(1, 2)
                    factor_sv["sv_A"][:, next_rec] = _svdvals(a, finite)
                    factor_sv["sv_Bt"][:, next_rec] = _svdvals(bt, finite)
                    factor_sv["sv_aug"][:, next_rec] = _svdvals(torch.cat([a, bt], dim=1), finite)
                next_rec += 1
            if t == steps:
                break
            for u, g in zip(factors, grads):
                u.add_(g, alpha=-lr)

    final_loss = 0.5 * (r * (w - m)).sum(dim=(1, 2))
    diverged = ~(torch.isfinite(final_loss) & torch.isfinite(w).all(dim=(1, 2)))
    out: dict[str, Any] = {
        "steps": np.asarray(record, dtype=np.int64), "W": w.numpy().copy(),
        "factors": [u.numpy().copy() for u in factors], "loss": loss.numpy(), "grad_norm": grad_norm.numpy(),
        "singular_values": sv.numpy(), "final_loss": final_loss.numpy(), "diverged": diverged.numpy(),
    }
    for name, values in factor_sv.items():
        out[name] = values.numpy()
        ranks = (values > rank_rtol * values[..., :1]).sum(dim=-1)
        out["rank" + name[2:]] = torch.where(torch.isnan(values[..., 0]), -1, ranks).numpy()
    return out


def loss_plateaus(target: np.ndarray, mask: np.ndarray, loss: np.ndarray, steps: np.ndarray, levels: Sequence[float],
                  *, rtol: float = 1e-2, **train: Any) -> tuple[list[int], list[int], list[np.ndarray | None]]:
    """Where one run's recorded loss series (`loss` at `steps`, from `train_factorizations` on
    `target`, `mask` with the keyword arguments `train`) sits at each of `levels`, i.e. the recorded
    steps with |L - level| <= rtol level (e.g. the losses of saddles, the best rank-k fits): their
    number, the middle one (-1: none), and W there (None: none), by training again to that step (the
    trainer is deterministic, so this is the W the first run passed through)."""
    mid: list[int] = []
    count: list[int] = []
    w: list[np.ndarray | None] = []
    for level in levels:
        on = np.flatnonzero(np.abs(loss - level) <= rtol * level)
        count.append(int(on.size))
        if on.size == 0:
            mid.append(-1)
            w.append(None)
            continue
        t = int(steps[on[on.size // 2]])
        mid.append(t)
        w.append(train_factorizations(target[None], mask[None], steps=t, **train)["W"][0])
    return mid, count, w
