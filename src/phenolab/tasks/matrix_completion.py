"""Matrix completion: low-rank targets, observation masks, connectivity, the minimum nuclear norm
completion, and the measurements of a learned matrix. The batched gradient-descent trainer for
matrix factorizations W = U_1 ... U_L lives in `phenolab.train.factorization`.

Sources: Bai, Zhao & Zhang, "Connectivity Shapes Implicit Regularization in Matrix Factorization
Models for Matrix Completion" (NeurIPS 2024, arXiv:2405.13721): connected observations lead small-
init training to the minimum-rank completion, disconnected ones (notably complete bipartite blocks)
to the minimum nuclear norm one; training climbs hierarchical invariant manifolds, pausing at the
best rank-k fits. Zhang et al., "Linear Stability Hypothesis and Rank Stratification for Nonlinear
Models" (arXiv:2211.11623): a rank-r d_1 x d_2 target has model rank r (d_1 + d_2 - r).

A mask is a boolean (d_1, d_2) array, True where M*_ij is observed; Omega is its set of positions and
P_Omega zeroes the other entries. Everything here is a pure function of its arguments and seeds.

    M = low_rank_target(4, 4, 1, seed)
    mask = block_mask(4, [([0, 1], [0, 1]), ([2, 3], [2, 3])])
    connectivity(mask)                                # "disconnected_complete"
    X, info = min_nuclear_norm_completion(M, mask)    # info["nuclear_norm"] == block_nuclear_norm(M, mask)
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

Seed = int | np.random.Generator | torch.Generator

__all__ = [
    "ConvergenceError", "low_rank_target", "random_mask", "star_mask", "block_mask", "missing_entries_mask",
    "bipartite_components", "connectivity", "min_observed_per_line", "min_nuclear_norm_completion",
    "block_nuclear_norm", "singular_values", "learned_rank", "nuclear_norm", "relative_error", "best_rank_k_fit",
    "first_target_seeds", "nuclear_norm_ratio", "balanced_factors",
]


class ConvergenceError(RuntimeError):
    """A solver did not reach its stated tolerance within its iteration budget."""


# ----------------------------------------------------------------------------------------------
# targets and masks

def _generator(seed: Seed) -> np.random.Generator | torch.Generator:
    """A generator to draw from: a given numpy or torch Generator itself, else numpy's seeded by the int."""
    if isinstance(seed, (np.random.Generator, torch.Generator)):
        return seed
    return np.random.default_rng(seed)


def _standard_normal(shape: tuple[int, ...], gen: np.random.Generator | torch.Generator) -> np.ndarray:
    """N(0, 1) draws (float64)."""
    if isinstance(gen, torch.Generator):
        return torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
    return gen.standard_normal(shape)


def low_rank_target(d1: int, d2: int, rank: int, generator_or_seed: Seed, *,
                    kind: Literal["gaussian", "orthogonal"] = "gaussian") -> np.ndarray:
    """An exactly rank-r target M* (d_1, d_2), float64, with entries of order one.

    ``gaussian``: M* = U V^T / sqrt(r) with U (d_1, r), V (d_2, r) i.i.d. N(0, 1), so every entry has
    variance 1 (the protocol's "rank-r M* = U V^T"). ``orthogonal``: M* = s Q_1 Q_2^T with Q_1, Q_2
    orthonormal columns (QR of Gaussian matrices) and all r singular values equal to
    s = sqrt(d_1 d_2 / r), so the mean squared entry is 1. U (or Q_1) is drawn before V.
    """
    for name, value in (("d1", d1), ("d2", d2), ("rank", rank)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
    if rank > min(d1, d2):
        raise ValueError(f"rank: must be <= min(d1, d2) = {min(d1, d2)}, got {rank}")
    gen = _generator(generator_or_seed)
    u = _standard_normal((d1, rank), gen)
    v = _standard_normal((d2, rank), gen)
    if kind == "gaussian":
        return u @ v.T / math.sqrt(rank)
    if kind == "orthogonal":
        q1, q2 = np.linalg.qr(u)[0], np.linalg.qr(v)[0]
        return math.sqrt(d1 * d2 / rank) * q1 @ q2.T
    raise ValueError(f"kind: must be 'gaussian' or 'orthogonal', got {kind!r}")


def random_mask(d1: int, d2: int, n: int, rng: Seed) -> np.ndarray:
    """n of the d_1 d_2 positions, uniformly at random without replacement."""
    if not isinstance(n, int) or not 0 <= n <= d1 * d2:
        raise ValueError(f"n: must be an integer in [0, {d1 * d2}], got {n!r}")
    gen = _generator(rng)
    if isinstance(gen, torch.Generator):
        order = torch.randperm(d1 * d2, generator=gen).numpy()
    else:
        order = gen.permutation(d1 * d2)
    mask = np.zeros(d1 * d2, dtype=bool)
    mask[order[:n]] = True
    return mask.reshape(d1, d2)


def star_mask(d1: int, d2: int | None = None) -> np.ndarray:
    """Row 0 and column 0 observed: d_1 + d_2 - 1 entries (2d - 1 for d x d), a connected mask that
    determines a rank-1 target whose first row and column have no zeros (docs/specs/matrix-completion.md, MC-1)."""
    mask = np.zeros((d1, d1 if d2 is None else d2), dtype=bool)
    mask[0, :] = True
    mask[:, 0] = True
    return mask


def block_mask(d: int | tuple[int, int], blocks: Iterable[tuple[Sequence[int], Sequence[int]]]) -> np.ndarray:
    """The union of complete bipartite blocks rows x cols, e.g. ``block_mask(4, [([0, 1], [0, 1]),
    ([2, 3], [2, 3])])``: 8 entries in two disconnected complete blocks (docs/specs/matrix-completion.md, MC-2)."""
    d1, d2 = (d, d) if isinstance(d, int) else d
    mask = np.zeros((d1, d2), dtype=bool)
    for rows, cols in blocks:
        mask[np.ix_(np.asarray(rows, dtype=int), np.asarray(cols, dtype=int))] = True
    return mask


def missing_entries_mask(d1: int, d2: int, missing: Iterable[tuple[int, int]]) -> np.ndarray:
    """Everything observed except the given (i, j) positions (Fig. 3 of 2405.13721: 15 of 16)."""
    mask = np.ones((d1, d2), dtype=bool)
    for i, j in missing:
        mask[i, j] = False
    return mask


# ----------------------------------------------------------------------------------------------
# connectivity

def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask: must be a 2-D boolean array, got dtype {mask.dtype} and shape {mask.shape}")
    return mask


def bipartite_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of the observation graph: d_1 row nodes and d_2 column nodes, one edge
    row i -- column j per observed (i, j). Returns (n_components, row_labels (d_1,), col_labels (d_2,)).
    A row or column without any observation is a component of its own."""
    mask = _check_mask(mask)
    d1, d2 = mask.shape
    i, j = np.nonzero(mask)
    graph = coo_matrix((np.ones(i.size), (i, d1 + j)), shape=(d1 + d2, d1 + d2))
    n, labels = connected_components(graph, directed=False)
    return int(n), labels[:d1], labels[d1:]


def connectivity(mask: np.ndarray) -> Literal["connected", "disconnected_complete", "disconnected"]:
    """The connectivity class of a mask (Fig. 1 of 2405.13721).

    ``connected``: the bipartite graph is one component (every row and column observed at least once).
    ``disconnected_complete``: several components, each a complete bipartite block (all of its
    rows x columns observed). ``disconnected``: any other mask. A row or column without observations
    is a component with no edge, not a complete block, so it makes the mask ``disconnected``.
    """
    n, row_labels, col_labels = bipartite_components(mask)
    if n == 1:
        return "connected"
    for c in range(n):
        rows, cols = np.flatnonzero(row_labels == c), np.flatnonzero(col_labels == c)
        if rows.size == 0 or cols.size == 0 or not mask[np.ix_(rows, cols)].all():
            return "disconnected"
    return "disconnected_complete"


def min_observed_per_line(mask: np.ndarray) -> int:
    """The fewest observations in any row or column. A rank-r target is not identifiable when some
    row or column has fewer than r observed entries (docs/specs/matrix-completion.md, check MR-4)."""
    mask = _check_mask(mask)
    return int(min(mask.sum(axis=1).min(), mask.sum(axis=0).min()))


# ----------------------------------------------------------------------------------------------
# minimum nuclear norm completion

def _max_step(x: np.ndarray, dx: np.ndarray) -> float:
    """The largest a with x + a dx positive semidefinite (x positive definite); inf if every a is."""
    li = np.linalg.inv(np.linalg.cholesky(x))
    lam = np.linalg.eigvalsh(li @ dx @ li.T)[0]
    return math.inf if lam >= 0 else -1.0 / lam


def min_nuclear_norm_completion(target: np.ndarray, mask: np.ndarray, *, tol: float = 1e-9,
                                max_iter: int = 100) -> tuple[np.ndarray, dict]:
    """min ||X||_* subject to X_ij = M_ij on Omega, by a primal-dual interior-point method.

    The problem is the semidefinite program (Fazel 2002; Recht, Fazel & Parrilo 2010)

        min (tr W_1 + tr W_2) / 2   s.t.   P = [[W_1, X], [X^T, W_2]] >= 0,   X_ij = M_ij on Omega,

    whose dual is  max <P_Omega(M), Y>  s.t.  Y supported on Omega, ||Y||_op <= 1. It is solved by
    infeasible-start path following with the HKM direction and Mehrotra's predictor-corrector
    (Helmberg, Rendl, Vanderbei & Wolkowicz 1996; Todd, Toh & Tutuncu 1998), on M scaled to
    max |M_Omega| = 1. Stopping is by a certificate that does not trust the solver: X (the off-diagonal
    block of P with its observed entries reset to M, so exactly feasible) is an upper bound
    ||X||_*, and Y / max(1, ||Y||_op) (the multipliers, exactly dual feasible) gives the lower bound
    <M, Y> / max(1, ||Y||_op) <= min ||X||_*. The solver stops when (upper - lower) <= tol * upper, so the
    returned nuclear norm is within a relative tol of the minimum; it raises `ConvergenceError`
    otherwise. Typically 8-16 iterations, a few milliseconds for d <= 6.

    Returns X (d_1, d_2) and info: iterations, converged (True), nuclear_norm (= upper), lower, gap
    (relative), dual (the certificate Y), primal_residual ||b - A(P)|| and dual_residual
    ||C - S - A*(y)|| of the SDP iterate (in the scaled problem).
    """
    target = np.asarray(target, dtype=np.float64)
    mask = _check_mask(mask)
    if target.shape != mask.shape:
        raise ValueError(f"target and mask: shapes differ, {target.shape} vs {mask.shape}")
    if not np.isfinite(target[mask]).all():
        raise ValueError("target: observed entries must be finite")
    d1, d2 = target.shape
    n = d1 + d2
    rows, cols = np.nonzero(mask)
    cols_p = d1 + cols  # column j of X is row/column d_1 + j of P
    b = target[rows, cols]
    scale = float(np.abs(b).max()) if b.size else 0.0
    if scale == 0.0:  # nothing observed, or all observed entries zero: X = 0 is optimal
        info = dict(iterations=0, converged=True, nuclear_norm=0.0, lower=0.0, gap=0.0,
                    dual=np.zeros((d1, d2)), primal_residual=0.0, dual_residual=0.0)
        return np.zeros((d1, d2)), info
    b = b / scale

    def a_op(k: np.ndarray) -> np.ndarray:  # A(K)_l = <A_l, K>, A_l = (e_i e_c^T + e_c e_i^T) / 2
        return 0.5 * (k[rows, cols_p] + k[cols_p, rows])

    def a_adj(y: np.ndarray) -> np.ndarray:  # A*(y) = sum_l y_l A_l
        k = np.zeros((n, n))
        k[rows, cols_p] = 0.5 * y
        k[cols_p, rows] = 0.5 * y
        return k

    c_mat = 0.5 * np.eye(n)
    ii, ic, ci, cc = np.ix_(rows, rows), np.ix_(rows, cols_p), np.ix_(cols_p, rows), np.ix_(cols_p, cols_p)
    p, s, y = 2.0 * np.eye(n), np.eye(n), np.zeros(b.size)
    for it in range(max_iter + 1):
        x = p[:d1, d1:].copy()
        x[mask] = b
        dual = np.zeros((d1, d2))
        dual[rows, cols] = y
        dual /= max(1.0, float(np.linalg.norm(dual, 2)))
        upper = float(np.linalg.svd(x, compute_uv=False).sum())
        lower = float(b @ dual[rows, cols])
        gap = (upper - lower) / upper
        rd = c_mat - s - a_adj(y)
        if gap <= tol:
            x = x * scale
            x[mask] = target[mask]  # exact, not up to the rounding of the scaling
            info = dict(iterations=it, converged=True, nuclear_norm=nuclear_norm(x), lower=lower * scale, gap=gap,
                        dual=dual, primal_residual=float(np.linalg.norm(b - a_op(p))),
                        dual_residual=float(np.linalg.norm(rd)))
            return x, info
        if it == max_iter:
            break
        g = np.linalg.inv(s)
        g = 0.5 * (g + g.T)
        mu = float(np.sum(p * s)) / n
        # Schur complement M_kl = <A_k, P A_l S^-1>, written out for A_l = (e_i e_c^T + e_c e_i^T) / 2
        schur = 0.25 * (p[ii] * g[cc] + p[ic] * g[ci] + p[ci] * g[ic] + p[cc] * g[ii])
        try:
            chol = np.linalg.cholesky(schur)

            def solve(r: np.ndarray, m: np.ndarray = chol) -> np.ndarray:
                return np.linalg.solve(m.T, np.linalg.solve(m, r))
        except np.linalg.LinAlgError:  # positive definite in exact arithmetic; ill-conditioned near the end
            def solve(r: np.ndarray, m: np.ndarray = schur) -> np.ndarray:
                return np.linalg.lstsq(m, r, rcond=None)[0]

        def direction(rc: np.ndarray, g: np.ndarray = g, p: np.ndarray = p,
                      rd: np.ndarray = rd) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # Newton step for A(P) = b, A*(y) + S = C, P S = rc (linearized, HKM symmetrization)
            dy = solve(b - a_op(rc @ g) + a_op(p @ rd @ g))
            ds = rd - a_adj(dy)
            dp = rc @ g - p - p @ ds @ g
            return 0.5 * (dp + dp.T), dy, ds

        dp, dy, ds = direction(np.zeros((n, n)))  # predictor (affine scaling)
        ap, ad = min(1.0, _max_step(p, dp)), min(1.0, _max_step(s, ds))
        sigma = min(1.0, (float(np.sum((p + ap * dp) * (s + ad * ds))) / n / mu) ** 3)
        dp, dy, ds = direction(sigma * mu * np.eye(n) - dp @ ds)  # corrector
        ap, ad = min(1.0, 0.98 * _max_step(p, dp)), min(1.0, 0.98 * _max_step(s, ds))
        p = p + ap * dp
        s = s + ad * ds
        s = 0.5 * (s + s.T)
        y = y + ad * dy
    raise ConvergenceError(f"min_nuclear_norm_completion: relative duality gap {gap:.3e} > tol {tol:g} after "
                           f"{max_iter} iterations (d1={d1}, d2={d2}, observed={b.size})")


def block_nuclear_norm(target: np.ndarray, mask: np.ndarray) -> float:
    """The minimum nuclear norm for a mask whose components are complete bipartite blocks: the sum of
    the nuclear norms of the observed blocks M*[rows_c, cols_c] (rows or columns without observations
    add nothing). Closed form by the pinching inequality ||X||_* >= sum_c ||X[rows_c, cols_c]||_*,
    with equality for the block-diagonal completion (pinching inequality). Raises ValueError for a mask
    with a component that is not a complete block."""
    target = np.asarray(target, dtype=np.float64)
    n, row_labels, col_labels = bipartite_components(mask)
    total = 0.0
    for c in range(n):
        rows, cols = np.flatnonzero(row_labels == c), np.flatnonzero(col_labels == c)
        if rows.size == 0 or cols.size == 0:
            continue
        if not mask[np.ix_(rows, cols)].all():
            raise ValueError(f"mask: component {c} (rows {rows.tolist()}, cols {cols.tolist()}) is not a complete "
                             "bipartite block")
        total += float(np.linalg.svd(target[np.ix_(rows, cols)], compute_uv=False).sum())
    return total


# ----------------------------------------------------------------------------------------------
# measurements

def singular_values(w: np.ndarray | torch.Tensor) -> np.ndarray:
    """Singular values of W (..., d_1, d_2), descending, shape (..., min(d_1, d_2))."""
    return np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False)


def learned_rank(w: np.ndarray | torch.Tensor, rtol: float = 1e-3) -> np.ndarray | int:
    """The learned (numerical) rank #{i : sigma_i > rtol sigma_1} (docs/specs/matrix-completion.md: 1e-3);
    0 for W = 0. An int for one matrix, an array for a stack (..., d_1, d_2)."""
    s = singular_values(w)
    r = np.sum(s > rtol * s[..., :1], axis=-1)
    return int(r) if np.ndim(r) == 0 else r


def nuclear_norm(w: np.ndarray | torch.Tensor) -> np.ndarray | float:
    """||W||_* = sum_i sigma_i(W), for one matrix or a stack."""
    r = singular_values(w).sum(axis=-1)
    return float(r) if np.ndim(r) == 0 else r


def relative_error(w: np.ndarray | torch.Tensor, m: np.ndarray | torch.Tensor) -> np.ndarray | float:
    """||W - M||_F / ||M||_F, for one matrix or a stack."""
    w, m = np.asarray(w, dtype=np.float64), np.asarray(m, dtype=np.float64)
    r = np.linalg.norm(w - m, axis=(-2, -1)) / np.linalg.norm(m, axis=(-2, -1))
    return float(r) if np.ndim(r) == 0 else r


def best_rank_k_fit(target: np.ndarray, mask: np.ndarray, k: int, *, restarts: int = 8, seed: int = 0,
                    tol: float = 1e-15, max_nfev: int = 1000) -> tuple[np.ndarray, float]:
    """A best rank-k fit to the observed entries: argmin over rank-k X of ||P_Omega(X - M)||_F.

    Method: Levenberg-Marquardt (MINPACK, `scipy.optimize.least_squares(method="lm")`) on the factors
    X = U V^T, U (d_1, k), V (d_2, k), with the exact Jacobian, from `restarts` Gaussian starts scaled
    like M (seeded by `seed`); each stops when MINPACK's xtol = ftol = gtol = tol are met or after
    max_nfev evaluations. The problem is not convex, so this is the best of the restarts, not a
    certified optimum; for k >= the minimum rank of a completion the residual is ~1e-16. The fit on the
    unobserved entries is unique only where the rank-k fit is identifiable; on a fully observed mask it
    is the truncated SVD (Eckart-Young). Returns X and its residual ||P_Omega(X - M)||_F.
    docs/specs/matrix-completion.md, check MC-4: plateaus of small-init training sit at these fits.
    """
    from scipy.optimize import least_squares

    target = np.asarray(target, dtype=np.float64)
    mask = _check_mask(mask)
    d1, d2 = target.shape
    if not isinstance(k, int) or not 1 <= k <= min(d1, d2):
        raise ValueError(f"k: must be an integer in [1, {min(d1, d2)}], got {k!r}")
    rows, cols = np.nonzero(mask)
    n, n_par = rows.size, (d1 + d2) * k
    values = target[rows, cols]
    size = float(np.linalg.norm(values))
    if size == 0.0:
        return np.zeros((d1, d2)), 0.0
    pad = max(0, n_par - n)  # MINPACK's LM wants at least as many residuals as parameters: zeros change nothing

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[: d1 * k].reshape(d1, k), x[d1 * k:].reshape(d2, k)

    def residuals(x: np.ndarray) -> np.ndarray:
        u, v = split(x)
        return np.concatenate([np.einsum("nk,nk->n", u[rows], v[cols]) - values, np.zeros(pad)])

    def jacobian(x: np.ndarray) -> np.ndarray:
        u, v = split(x)
        jac = np.zeros((n + pad, n_par))
        for c in range(k):  # d r_l / d U[i_l, c] = V[j_l, c], d r_l / d V[j_l, c] = U[i_l, c]
            jac[np.arange(n), rows * k + c] = v[cols, c]
            jac[np.arange(n), d1 * k + cols * k + c] = u[rows, c]
        return jac

    rng = np.random.default_rng(seed)
    best_x, best_res = np.zeros((d1, d2)), size
    for _ in range(restarts):
        x0 = rng.standard_normal(n_par) * math.sqrt(size / math.sqrt(n * k))
        fit = least_squares(residuals, x0, jac=jacobian, method="lm", xtol=tol, ftol=tol, gtol=tol, max_nfev=max_nfev)
        res = float(np.linalg.norm(fit.fun))
        if res < best_res:
            u, v = split(fit.x)
            best_x, best_res = u @ v.T, res
    return best_x, best_res


def first_target_seeds(d1: int, d2: int, rank: int, count: int, accept: Callable[[np.ndarray], bool]) -> list[int]:
    """The seeds s = 0, 1, ... of the first `count` Gaussian targets `low_rank_target(d1, d2, rank, s)`
    that `accept` (a selection rule computed before any training)."""
    selected: list[int] = []
    seed = 0
    while len(selected) < count:
        if accept(low_rank_target(d1, d2, rank, seed)):
            selected.append(seed)
        seed += 1
    return selected


def nuclear_norm_ratio(target: np.ndarray, mask: np.ndarray) -> float:
    """gamma = ||M*||_* / min ||X||_* over the completions X that agree with M* on the mask (>= 1;
    1 when the target is itself a minimum-nuclear-norm completion)."""
    return float(nuclear_norm(target) / min_nuclear_norm_completion(target, mask)[1]["nuclear_norm"])


def balanced_factors(m: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-width factors A = [U sqrt(S), 0], B = [sqrt(S) V^T; 0] of the rank-r matrix M = A B (from its
    SVD; k = min(d1, d2) columns of A): a point where the factorization's Jacobian rank is its model
    rank r (d_1 + d_2 - r)."""
    u, s, vt = np.linalg.svd(m)
    k = min(m.shape)
    a, b = np.zeros((m.shape[0], k)), np.zeros((k, m.shape[1]))
    a[:, :r] = u[:, :r] * np.sqrt(s[:r])
    b[:r] = np.sqrt(s[:r])[:, None] * vt[:r]
    return a, b
