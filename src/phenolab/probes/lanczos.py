"""Spectra of a symmetric operator known only through its matrix-vector product `matvec`.

Used for Hessians (`phenolab.probes.hessian`), but nothing here knows about models: the
operator is any ``matvec: Tensor (n,) -> Tensor (n,)`` with A symmetric.

- `lanczos`: top-k (largest algebraic) eigenpairs by Lanczos with full reorthogonalization,
  stopped when the Ritz residuals are small (Lanczos 1950; used for Hessians by Sagun et al.,
  arXiv:1706.04454, and Ghorbani et al., arXiv:1901.10159).
- `power_iteration`: the simple baseline (as in PyHessian, Yao et al., arXiv:1912.07145).
- `hutchinson_trace`: tr A = E[v^T A v] for Rademacher v (Hutchinson 1989).
- `slq_nodes`, `slq_density`: stochastic Lanczos quadrature of the spectral density
  (Ghorbani, Krishnan, Xiao 2019, arXiv:1901.10159; Lin, Saad, Yang 2016).

All vectors are float64 on `device`; `matvec` receives float64 vectors and its result is cast
back to float64, so an operator may work in float32 while the orthogonalization and the
small eigenproblems stay in float64. Randomness comes from a `torch.Generator` seeded by `seed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

Matvec = Callable[[Tensor], Tensor]
Reorth = Literal["full", "none"]

_BREAKDOWN = 1e-10  # beta below this times the operator-norm estimate: the Krylov space is invariant


@dataclass
class _Krylov:
    """A Lanczos run: orthonormal basis rows q[0..size-1] of a preallocated (capacity, n) buffer,
    the tridiagonal T (alpha on the diagonal, beta[j] coupling q_j and q_{j+1}; the last beta is
    the residual coupling)."""

    q: Tensor
    size: int = 1
    alpha: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    hvps: int = 0
    restarts: int = 0

    @classmethod
    def start(cls, v: Tensor, capacity: int) -> _Krylov:
        q = torch.empty(capacity, v.numel(), dtype=torch.float64, device=v.device)
        q[0] = v / v.norm()
        return cls(q=q)

    @property
    def basis(self) -> Tensor:
        return self.q[: self.size]

    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (ascending) and eigenvectors of T. scipy's tridiagonal solver (LAPACK
        stemr): O(m^2), and it avoids the thread contention that a dense eigh on a small
        matrix can hit next to torch's threads."""
        m = len(self.alpha)
        diagonal = np.asarray(self.alpha, dtype=np.float64)
        return eigh_tridiagonal(diagonal, np.asarray(self.beta[: m - 1], dtype=np.float64))


def _generator(seed: int, device: torch.device | str | None) -> torch.Generator:
    return torch.Generator(device=device or "cpu").manual_seed(int(seed))


def _gaussian(n: int, generator: torch.Generator, device: torch.device | str | None) -> Tensor:
    return torch.randn(n, generator=generator, dtype=torch.float64, device=device)


def rademacher(n: int, generator: torch.Generator, device: torch.device | str | None = None) -> Tensor:
    """A float64 vector of independent +-1 entries."""
    bits = torch.randint(0, 2, (n,), generator=generator, device=device)
    return bits.to(torch.float64) * 2.0 - 1.0


def _apply(matvec: Matvec, v: Tensor) -> Tensor:
    out = matvec(v)
    if out.shape != v.shape:
        raise ValueError(f"matvec returned shape {tuple(out.shape)} for a vector of shape {tuple(v.shape)}")
    return out.to(dtype=torch.float64, device=v.device)


def _orthogonalize(w: Tensor, basis: Tensor) -> Tensor:
    """w - Q^T Q w for orthonormal rows Q (classical Gram-Schmidt), repeated once when the pass
    removed most of w (|w'| < |w| / sqrt(2), the Kahan-Parlett "twice is enough" test; Giraud
    et al. 2005)."""
    for _ in range(2):
        before = float(w.norm())
        w = w - (basis @ w) @ basis
        if float(w.norm()) >= before / math.sqrt(2):
            break
    return w


def _fresh_direction(k: _Krylov, generator: torch.Generator) -> Tensor | None:
    """A random unit vector orthogonal to the basis, or None when the basis already spans R^n."""
    n = k.q.shape[1]
    if k.size >= n:
        return None
    w = _orthogonalize(_gaussian(n, generator, k.q.device), k.basis)
    norm = float(w.norm())
    return w / norm if norm > 1e-8 else None


def _step(matvec: Matvec, k: _Krylov, reorth: Reorth) -> Tensor:
    """One Lanczos step: w = A q_j - alpha_j q_j - beta_{j-1} q_{j-1} (then reorthogonalized);
    appends alpha_j and beta_j = |w| and returns w."""
    j = len(k.alpha)
    q = k.q[j]
    w = _apply(matvec, q)
    k.hvps += 1
    a = float(w @ q)
    w = w - a * q
    if j > 0:
        w = w - k.beta[j - 1] * k.q[j - 1]
    if reorth == "full":
        w = _orthogonalize(w, k.basis)
    k.alpha.append(a)
    k.beta.append(float(w.norm()))
    return w


def _scale(k: _Krylov) -> float:
    """max_j |alpha_j| + beta_j: an estimate of |A|_2 from the run so far (never 0)."""
    return max([abs(a) + b for a, b in zip(k.alpha, k.beta)] + [1e-300])


def _advance(k: _Krylov, w: Tensor, generator: torch.Generator, restart: bool) -> bool:
    """Append the next basis vector w / beta. At a breakdown (beta ~ 0: the Krylov space is
    invariant) set beta = 0 and, if `restart`, continue from a fresh random direction.
    Returns False when the run cannot continue."""
    if k.beta[-1] > _BREAKDOWN * _scale(k):
        k.q[k.size] = w / k.beta[-1]
        k.size += 1
        return True
    k.beta[-1] = 0.0
    fresh = _fresh_direction(k, generator) if restart else None
    if fresh is None:
        return False
    k.restarts += 1
    k.q[k.size] = fresh
    k.size += 1
    return True


def _top_ritz(k: _Krylov, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The `count` largest Ritz values of T (descending), their Ritz coefficient vectors
    (m, count), their residual norms |A y - theta y| = beta_m |s_{m,i}| (Paige 1971), and
    max_i |theta_i|, a lower bound on |A|_2 that converges to it."""
    theta, s = k.eigh()
    order = np.argsort(theta)[::-1][:count]
    residuals = abs(k.beta[-1]) * np.abs(s[-1, order])
    return theta[order], s[:, order], residuals, max(float(np.abs(theta).max()), 1e-300)


def lanczos(
    matvec: Matvec,
    n: int,
    k: int,
    *,
    iters: int | None = None,
    tol: float = 1e-8,
    seed: int = 0,
    reorth: Reorth = "full",
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Top-k (largest algebraic) eigenpairs of the symmetric operator A given by `matvec`.

    Lanczos from a Gaussian start vector q_0: A Q_m = Q_m T_m + beta_m q_m e_m^T, with T_m
    tridiagonal; the Ritz values theta_i = eig(T_m) approximate the extreme eigenvalues and the
    Ritz vectors y_i = Q_m s_i the eigenvectors. With ``reorth="full"`` every new Lanczos vector
    is orthogonalized against all earlier ones (Gram-Schmidt twice), which removes the spurious
    copies ("ghosts") of converged eigenvalues that plain Lanczos produces in floating point.

    Stops after the first step m >= k at which the k largest Ritz pairs have residuals
    beta_m |s_{m,i}| <= tol * |A|_est (|A|_est = max_i |theta_i|, the Ritz estimate of |A|_2); since
    |lambda - theta_i| <= residual_i (and <= residual_i^2 / gap), ``tol`` bounds the relative
    eigenvalue error. One HVP per step; no restarts, so after m HVPs the Ritz values are the best
    that the m-dimensional Krylov space offers (ARPACK's implicitly restarted `eigsh` keeps only
    `ncv` vectors and so never does better per HVP).

    When the Krylov space becomes invariant (beta_m ~ 0) the run continues from a random
    direction orthogonal to the basis and tests convergence only after one step of that new
    block, so exact multiplicities and low-rank operators are handled; like every
    single-vector Krylov method it may still report a multiple eigenvalue once if the other
    eigenpairs converge first, and a start vector nearly orthogonal to the top eigenvector
    delays it (the run first converges to lambda_2; a small ``tol`` guards against stopping there).

    Returns eigenvalues (k,) float64 descending, eigenvectors (n, k) float64 with unit columns
    (sign: largest-magnitude entry positive), and info: ``hvps``, ``iterations``, ``restarts``,
    ``residuals`` (k,), ``norm_estimate`` (|A|_est), ``converged``. ``iters``: the largest
    number of steps (HVPs), default min(n, 100 + 3k). ``tol=0`` runs exactly ``iters`` steps.
    """
    _check_sizes(n, k, iters)
    if reorth not in ("full", "none"):
        raise ValueError(f"reorth must be 'full' or 'none', got {reorth!r}")
    steps = min(n, iters if iters is not None else 100 + 3 * k)
    generator = _generator(seed, device)
    run = _Krylov.start(_gaussian(n, generator, device), steps)
    broke = False
    while True:
        w = _step(matvec, run, reorth)
        # at a breakdown every residual is 0: look once into the fresh block before trusting that
        broke, fresh_breakdown = run.beta[-1] <= _BREAKDOWN * _scale(run), not broke
        if tol > 0 and len(run.alpha) >= k and not (broke and fresh_breakdown) and _converged(run, k, tol):
            break
        if len(run.alpha) >= steps or not _advance(run, w, generator, restart=True):
            break
    return _ritz_pairs(run, k, tol)


def _converged(run: _Krylov, k: int, tol: float) -> bool:
    _, _, residuals, norm = _top_ritz(run, k)
    return bool(np.all(residuals <= tol * norm))


def _ritz_pairs(run: _Krylov, k: int, tol: float) -> tuple[Tensor, Tensor, dict[str, Any]]:
    count = min(k, len(run.alpha))
    theta, s, residuals, norm = _top_ritz(run, count)
    converged = count == k and bool(np.all(residuals <= tol * norm))
    q = run.q[: len(run.alpha)]
    vectors = q.T @ torch.as_tensor(s, dtype=torch.float64, device=q.device)
    vectors = _fix_signs(vectors / vectors.norm(dim=0, keepdim=True))
    info = {
        "hvps": run.hvps,
        "iterations": len(run.alpha),
        "restarts": run.restarts,
        "residuals": residuals,
        "norm_estimate": norm,
        "converged": converged,
    }
    return torch.as_tensor(theta.copy(), dtype=torch.float64), vectors, info


def _fix_signs(vectors: Tensor) -> Tensor:
    """Flip each column so that its largest-magnitude entry is positive (a deterministic sign)."""
    idx = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[idx, torch.arange(vectors.shape[1])])
    return vectors * torch.where(signs == 0, torch.ones_like(signs), signs)


def _check_sizes(n: int, k: int, iters: int | None) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, n={n}], got {k}")
    if iters is not None and iters < k:
        raise ValueError(f"iters must be >= k={k}, got {iters}")


def power_iteration(
    matvec: Matvec,
    n: int,
    *,
    iters: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[float, Tensor, dict[str, Any]]:
    """Eigenvalue of largest magnitude by power iteration, the baseline of PyHessian
    (Yao et al., arXiv:1912.07145): v <- A v / |A v|, lambda = v^T A v, stopped when the
    relative change |lambda_t - lambda_{t-1}| / (|lambda_{t-1}| + 1e-6) < tol or after `iters`
    HVPs. Converges at the rate |lambda_2 / lambda_1| per step; note that it finds the largest
    |lambda|, which for a Hessian with a large negative eigenvalue is not the top one.

    Returns (eigenvalue, unit eigenvector (n,) float64, info with ``hvps`` and ``converged``).
    """
    v = _gaussian(n, _generator(seed, device), device)
    v = v / v.norm()
    eigenvalue: float | None = None
    for t in range(1, iters + 1):
        w = _apply(matvec, v)
        estimate, norm = float(w @ v), float(w.norm())
        v = w / norm if norm > 0 else v
        if eigenvalue is not None and abs(estimate - eigenvalue) / (abs(eigenvalue) + 1e-6) < tol:
            return estimate, v, {"hvps": t, "converged": True}
        eigenvalue = estimate
    return float(eigenvalue), v, {"hvps": iters, "converged": False}  # type: ignore[arg-type]  # set by the loop


def hutchinson_trace(
    matvec: Matvec,
    n: int,
    *,
    samples: int = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """Hutchinson's estimator tr A ~ (1/S) sum_s v_s^T A v_s, v_s with i.i.d. Rademacher entries
    (Hutchinson 1989; as in PyHessian, arXiv:1912.07145). Unbiased, with variance per sample
    2 (|A|_F^2 - sum_i A_ii^2). Returns (estimate, standard error = sample std / sqrt(S))."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    generator = _generator(seed, device)
    values = []
    for _ in range(samples):
        v = rademacher(n, generator, device)
        values.append(float(v @ _apply(matvec, v)))
    arr = np.asarray(values)
    stderr = float(arr.std(ddof=1) / math.sqrt(samples)) if samples > 1 else float("inf")
    return float(arr.mean()), stderr


def slq_nodes(
    matvec: Matvec,
    n: int,
    *,
    probes: int = 5,
    steps: int = 80,
    seed: int = 0,
    reorth: Reorth = "full",
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the spectral density (Ghorbani et al. 2019,
    arXiv:1901.10159, Sec. 2; Lin, Saad, Yang 2016).

    For each probe v (Rademacher, normalized), `steps` Lanczos steps from v give
    T_m = S diag(theta) S^T;
    then v^T f(A) v ~ sum_j tau_j f(theta_j) with tau_j = S_{1j}^2, exact for polynomials f of
    degree < 2m. Averaging over probes estimates (1/n) tr f(A) = integral f(lambda) phi(lambda),
    so phi ~ sum over probes and nodes of (tau_j / probes) delta(lambda - theta_j).
    A run that reaches an invariant subspace stops early (its quadrature is then exact).

    Returns nodes and weights, flat float64 arrays over all probes; the weights sum to 1.
    """
    if probes < 1 or steps < 1:
        raise ValueError(f"probes and steps must be >= 1, got probes={probes}, steps={steps}")
    generator = _generator(seed, device)
    nodes, weights = [], []
    for _ in range(probes):
        run = _Krylov.start(rademacher(n, generator, device), min(steps, n))
        while True:
            w = _step(matvec, run, reorth)
            if len(run.alpha) >= min(steps, n) or not _advance(run, w, generator, restart=False):
                break
        theta, s = run.eigh()
        nodes.append(theta)
        weights.append(s[0] ** 2 / probes)
    return np.concatenate(nodes), np.concatenate(weights)


def gaussian_density(
    nodes: np.ndarray,
    weights: np.ndarray,
    grid: np.ndarray | None = None,
    sigma: float | None = None,
    points: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """phi(t) = sum_j w_j N(t; theta_j, sigma^2) on `grid`, renormalized so that
    sum_t phi(t) dt = 1 (dt = np.gradient(grid)).

    Defaults: sigma = 0.01 (max theta - min theta) (or 1e-3 max(|theta|, 1) for a point spectrum);
    grid: `points` equally spaced points on [min theta - 5 sigma, max theta + 5 sigma].
    """
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else 1e-3 * max(abs(hi), 1.0)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, points)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError("grid must be an increasing 1-D array of at least 2 points")
    z = (grid[:, None] - nodes[None, :]) / sigma
    density = (np.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))) @ weights
    mass = float(density @ np.gradient(grid))
    if mass <= 0:
        raise ValueError("the grid holds no mass of the density; widen it around the spectrum")
    return grid, density / mass


def slq_density(
    matvec: Matvec,
    n: int,
    *,
    probes: int = 5,
    steps: int = 80,
    grid: np.ndarray | None = None,
    sigma: float | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectral density of A by stochastic Lanczos quadrature with Gaussian smoothing
    (Ghorbani et al. 2019, arXiv:1901.10159): `slq_nodes` then `gaussian_density`.
    Costs probes * min(steps, n) HVPs. Returns (grid, density), float64, sum(density * dgrid) = 1.
    """
    nodes, weights = slq_nodes(matvec, n, probes=probes, steps=steps, seed=seed, device=device)
    return gaussian_density(nodes, weights, grid=grid, sigma=sigma)
