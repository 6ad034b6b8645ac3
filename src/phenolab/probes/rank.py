"""Model rank: the numerical rank of the Jacobian of theta -> (f_theta(x_1), ..., f_theta(x_N)).

Zhang, Zhang, Zhang, Bai, Luo & Xu, "Linear Stability Hypothesis and Rank Stratification for
Nonlinear Models" (arXiv:2211.11623); "Optimistic Estimate Uncovers the Potential of Nonlinear
Models" (arXiv:2307.08921); Zhang, Zhang, Zhang & Bai, "Local Linear Recovery Guarantee of Deep
Neural Networks at Overparameterization" (arXiv:2406.18035).

J(theta) = d (f_theta(x_1), ..., f_theta(x_N)) / d theta is (N k) x P for k outputs and P
trainable parameters. On N >> P generic inputs its rank is the dimension of the tangent space of
the function manifold at theta; its minimum over the theta that represent a target f* is the
model rank of f* (the optimistic sample size). Numerically

    rank J = #{i : sigma_i > rtol * sigma_max},   gap = sigma_rank / sigma_{rank+1},

with rtol = 1e-8 by default; the gap shows how clearly the rank stands out. Closed forms at a
target: a two-layer tanh net without bias whose function uses k neurons, k (d + 1) at any width
m >= k; a rank-r d_1 x d_2 matrix factorization W = A B, r (d_1 + d_2 - r).

Linear stability (local linear recovery): J_S is J on the n training inputs. ker J is always
contained in ker J_S; f is linearly stable on S iff ker J_S = ker J, i.e. rank J_S = rank J, which for
almost every sample holds iff n >= rank J.

Cost: J by per-sample reverse mode, vmap(jacrev) over the inputs, in float64 (8-16 ms for a
two-layer tanh net with P = 100 on N = 8000 inputs, one CPU thread; forward mode over the batch,
jacfwd, took 280 ms); singular values of the R factor of J = QR when J is tall (10-30 ms there).
A model that ``vmap`` cannot batch (``.item()``, control flow on values) falls back to one
forward-mode Jacobian-vector product per parameter over the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vmap

from phenolab.probes.evaluate import evaluating
from phenolab.probes.parameters import unflatten_parameters
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

__all__ = ["RankResult", "completion_linear_stability", "jacobian", "linear_stability", "model_rank",
           "model_rank_probe", "numerical_rank"]

# the probe refuses Jacobians with more entries (N k P) than this: 2^26 float64 = 512 MiB
MAX_JACOBIAN_ENTRIES = 2**26


@dataclass(frozen=True, eq=False)
class RankResult:
    """Numerical rank of a matrix: ``rank`` = #{i : sigma_i > tol}, tol = rtol * sigma_max.

    ``singular_values``: all of them, descending, float64. ``gap`` = sigma_rank / sigma_{rank+1};
    inf when nothing lies below the threshold (rank = min dimension) or the rest is exactly zero,
    and for the zero matrix (rank 0).
    """

    rank: int
    singular_values: np.ndarray
    rtol: float
    tol: float
    gap: float

    @property
    def sigma_max(self) -> float:
        return float(self.singular_values[0]) if self.singular_values.size else 0.0

    @property
    def log10_gap(self) -> float:
        return math.log10(self.gap)


def _check_rtol(rtol: float) -> None:
    if not 0 < rtol < 1:
        raise ValueError(f"rtol: must lie in (0, 1), got {rtol!r}")


def _singular_values(matrix: Tensor) -> Tensor:
    """sigma(J), through J = QR when J is tall (sigma(J) = sigma(R); Householder QR is backward
    stable, so R's singular values are as accurate as J's, and the SVD is P x P)."""
    rows, cols = matrix.shape
    if rows > 2 * cols:
        matrix = torch.linalg.qr(matrix, mode="r")[1]
    return torch.linalg.svdvals(matrix)


def numerical_rank(matrix_or_singular_values: Tensor | np.ndarray, *, rtol: float = 1e-8) -> RankResult:
    """Rank #{sigma_i > rtol * sigma_max} of a matrix (2-D), or of given singular values (1-D,
    any order, >= 0), computed in float64; with the gap sigma_rank / sigma_{rank+1} (`RankResult`)."""
    _check_rtol(rtol)
    a = torch.as_tensor(matrix_or_singular_values).detach().to(torch.float64)
    if a.ndim == 2:
        if not torch.isfinite(a).all():
            raise ValueError("numerical_rank: the matrix has non-finite entries (nan or inf)")
        s = _singular_values(a)
    elif a.ndim == 1:
        if not (torch.isfinite(a).all() and (a >= 0).all()):
            raise ValueError("numerical_rank: singular values must be finite and >= 0")
        s = a.sort(descending=True).values
    else:
        raise ValueError(f"numerical_rank: give a matrix (2-D) or singular values (1-D), got shape {tuple(a.shape)}")
    s = s.cpu().numpy()  # type: ignore[assignment]
    tol = rtol * (float(s[0]) if s.size else 0.0)  # type: ignore[truthy-function]
    rank = int((s > tol).sum())
    below = float(s[rank]) if rank < s.size else 0.0  # type: ignore[operator]
    gap = float(s[rank - 1]) / below if rank and below > 0 else math.inf
    return RankResult(rank=rank, singular_values=s, rtol=float(rtol), tol=tol, gap=gap)  # type: ignore[arg-type]


def _point(model: nn.Module, params: Mapping[str, Tensor] | np.ndarray | Tensor | None,
           dtype: torch.dtype) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(trainable parameters, everything else: frozen parameters and buffers), detached copies,
    floating ones cast to `dtype`; values from `params` (name -> tensor, or a flat vector in the
    layout of `flat_parameters`) where given."""
    if params is not None and not isinstance(params, Mapping):
        params = unflatten_parameters(model, params)
    named = dict(model.named_parameters())
    if params is not None and (unknown := sorted(set(params) - set(named))):
        raise ValueError(f"params: {unknown} are not parameters of the model; known: {sorted(named)}")
    values = {name: torch.as_tensor(params[name]) if params is not None and name in params else p
              for name, p in named.items()}

    def cast(t: Tensor, like: Tensor) -> Tensor:
        t = t.detach().to(like.device)
        return t.to(dtype) if t.is_floating_point() else t

    trainable = {name: cast(t, named[name]) for name, t in values.items() if named[name].requires_grad}
    if not trainable:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (none with requires_grad)")
    fixed = {name: cast(t, named[name]) for name, t in values.items() if not named[name].requires_grad}
    fixed.update({name: cast(b, b) for name, b in model.named_buffers()})
    return trainable, fixed


def jacobian(model: nn.Module, x: Tensor | np.ndarray, *,
             params: Mapping[str, Tensor] | np.ndarray | Tensor | None = None,
             dtype: torch.dtype = torch.float64) -> Tensor:
    """J = d (f_theta(x_1), ..., f_theta(x_N)) / d theta, shape (N k, P), in `dtype`.

    Rows: the outputs flattened sample by sample (row i k + a is output a of input i); columns:
    the trainable parameters (``requires_grad``) in ``model.named_parameters()`` order, each
    flattened, as in `flat_parameters`. ``params``: other parameter values (name -> tensor, or a
    flat vector theta). Copies of the parameters, buffers and floating inputs are cast to `dtype`;
    the model runs in eval mode and is not changed. Any ``nn.Module`` whose output on a batch is
    (N, ...) with the same k entries per input; J is built input by input, so each output must
    depend on its own input only (true of any net in eval mode).
    """
    trainable, fixed = _point(model, params, dtype)
    device = next(iter(trainable.values())).device
    x = torch.as_tensor(x)
    x = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x: must hold at least one input (n, ...), got shape {tuple(x.shape)}")

    def f(p: dict[str, Tensor], inputs: Tensor) -> Tensor:
        out = functional_call(model, {**fixed, **p}, (inputs,))
        if not isinstance(out, Tensor):
            raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
        return out.reshape(len(inputs), -1)

    with evaluating(model):
        try:
            rows = vmap(jacrev(lambda p, xi: f(p, xi[None])[0]), in_dims=(None, 0))(trainable, x)
            return torch.cat([rows[name].reshape(-1, trainable[name].numel()) for name in trainable], dim=1)
        except RuntimeError as vmap_error:
            if "vmap" not in str(vmap_error):
                raise
            return _jacobian_by_columns(f, trainable, x)


def _jacobian_by_columns(f: Callable[[dict[str, Tensor], Tensor], Tensor], trainable: dict[str, Tensor],
                         x: Tensor) -> Tensor:
    """J column by column: one forward-mode J e_j per parameter over the whole batch (no vmap)."""
    columns = []
    for name, value in trainable.items():
        for j in range(value.numel()):
            tangents = {other: torch.zeros_like(t) for other, t in trainable.items()}
            tangents[name].view(-1)[j] = 1.0
            columns.append(jvp(lambda p: f(p, x), (trainable,), (tangents,))[1].reshape(-1))
    return torch.stack(columns, dim=1)


def model_rank(model: nn.Module, x: Tensor | np.ndarray, *, rtol: float = 1e-8,
               params: Mapping[str, Tensor] | np.ndarray | Tensor | None = None) -> RankResult:
    """Numerical rank of J(theta) on the inputs x (`jacobian`, `numerical_rank`): on N >> P generic
    inputs, the dimension of the function manifold's tangent space at theta."""
    _check_rtol(rtol)
    return numerical_rank(jacobian(model, x, params=params), rtol=rtol)


def linear_stability(model: nn.Module, x_population: Tensor | np.ndarray, x_train: Tensor | np.ndarray, *,
                     rtol: float = 1e-8, params: Mapping[str, Tensor] | np.ndarray | Tensor | None = None
                     ) -> dict[str, Any]:
    """Whether the model's function at theta is linearly stable on the training inputs
    (arXiv:2406.18035, 2211.11623): ker J_S = ker J, i.e. rank J_S = rank J (ker J lies in ker J_S).

    Returns ``rank`` (J on `x_population`), ``rank_train`` (J_S on `x_train`), ``stable``
    (rank_train == rank), and both `RankResult`s as ``population`` and ``train``.
    """
    population = model_rank(model, x_population, rtol=rtol, params=params)
    train = model_rank(model, x_train, rtol=rtol, params=params)
    return {"rank": population.rank, "rank_train": train.rank, "stable": train.rank == population.rank,
            "population": population, "train": train}


def _population_inputs(task: Task, points: int, seed: int) -> Tensor:
    """``task.sample(points, generator)``; else the first `points` rows of ``task.x_test`` when it
    has that many; else N(0, I_d) draws (float64). The generator is seeded with `seed`."""
    generator = torch.Generator().manual_seed(int(seed))
    if task.sample is not None:
        return task.sample(points, generator)
    if task.x_test is not None and len(task.x_test) >= points:
        return task.x_test[:points]
    return torch.randn((points, task.input_dim), generator=generator, dtype=torch.float64)


@register_probe("model_rank")
def model_rank_probe(model: nn.Module, task: Task, *, points: int = 2000, rtol: float = 1e-8, seed: int = 0,
                     train: bool = True) -> ProbeResult:
    """Model rank at the current parameters (arXiv:2211.11623): rank of J on `points` population
    inputs (`_population_inputs`: the task's sampler, its test inputs, or N(0, I_d)).

    Floats ``rank``, ``log10_gap`` (log10 sigma_rank / sigma_{rank+1}, inf when nothing lies below
    the threshold), ``sigma_max``; array ``singular_values``; with ``train=True`` also
    ``rank_train`` (J_S on the training inputs) and ``linearly_stable`` (1.0 when rank_train =
    rank, else 0.0).
    """
    _check_rtol(rtol)
    if points < 1:
        raise ValueError(f"points: must be >= 1, got {points}")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    largest = max(points, len(task.x_train) if train else 0)
    if largest * n_params > MAX_JACOBIAN_ENTRIES:
        raise ValueError(f"model_rank: a Jacobian of {largest} inputs x {n_params} parameters exceeds "
                         f"{MAX_JACOBIAN_ENTRIES} entries; lower points (now {points}) or, for a large training set, "
                         "set train=False")
    result = model_rank(model, _population_inputs(task, points, seed), rtol=rtol)
    out: ProbeResult = {"rank": float(result.rank), "log10_gap": result.log10_gap, "sigma_max": result.sigma_max,
                        "singular_values": result.singular_values}
    if train:
        rank_train = model_rank(model, task.x_train, rtol=rtol).rank
        out.update(rank_train=float(rank_train), linearly_stable=float(rank_train == result.rank))
    return out


def completion_linear_stability(target: np.ndarray, mask: np.ndarray, r: int, *,
                                rtol: float = 1e-8) -> dict[str, Any]:
    """`linear_stability` of a full-width two-factor matrix factorization (`MatrixFactorization`)
    at the truth: its balanced factors of the rank-r target (`balanced_factors`), the population all
    d1 d2 positions and the training inputs the observed ones (arXiv:2211.11623, section 4)."""
    from phenolab.models.matrix_factorization import MatrixFactorization, all_positions
    from phenolab.tasks.matrix_completion import balanced_factors

    d1, d2 = target.shape
    positions = all_positions(d1, d2)
    a, b = balanced_factors(target, r)
    return linear_stability(MatrixFactorization(d1, d2), positions, positions[torch.as_tensor(mask.reshape(-1))],
                            rtol=rtol, params={"factors.0": torch.as_tensor(a), "factors.1": torch.as_tensor(b)})
