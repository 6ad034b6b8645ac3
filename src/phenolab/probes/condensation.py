"""Condensation measurements: the phase diagram (Luo et al., arXiv 2007.07497) and initial
condensation (Zhou et al., arXiv 2105.11686).

A neuron k of a two-layer net f(x) = sum_k a_k sigma(w_k . x + b_k) + c has the input vector
u_k = (w_k, b_k) and the amplitude A_k = ||a_k|| ||u_k||. In the linear regime the u_k barely
move (the relative distance RD -> 0 with width); in the condensed regime they gather at a few
isolated orientations, which the cosine similarity D_kl = u_k . u_l / (||u_k|| ||u_l||) shows
as a few blocks of D ~ +-1.

Probes: ``condensation`` (RD of the neurons, cluster counts, singular-value energy, 1-D
features) and ``relative_distance`` (RD of all parameters, the first and the last layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from phenolab.probes.neurons import first_layer, is_two_layer, two_layer_neurons
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.probes.requirements import INPUT_LAYER
from phenolab.tasks.base import Task

__all__ = [
    "big_clusters",
    "condensation_probe",
    "condensed_directions",
    "cosine_matrix",
    "display_order",
    "features_1d",
    "greedy_clusters",
    "neuron_vectors",
    "pair_fraction",
    "relative_distance",
    "relative_distance_probe",
    "top_orientation_share",
    "top_singular_energy",
    "top_neuron_alignment",
]

def _numpy(values: np.ndarray | Tensor | Sequence[float]) -> np.ndarray:
    """float64 numpy copy of a tensor or array."""
    if isinstance(values, Tensor):
        return values.detach().cpu().to(torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def _rows(values: np.ndarray | Tensor, m: int | None = None) -> np.ndarray:
    """float64 (m, ·) matrix: a vector (m,) becomes one column."""
    arr = _numpy(values)
    return arr.reshape(len(arr) if m is None else m, -1)


def neuron_vectors(w: np.ndarray | Tensor, b: np.ndarray | Tensor | None) -> np.ndarray:
    """u_k = (w_k, b_k) as rows of a float64 (m, d + 1) matrix; (m, d) without biases."""
    w_rows = _rows(w)
    return w_rows if b is None else np.concatenate([w_rows, _rows(b, len(w_rows))], axis=1)


def features_1d(
    w: np.ndarray | Tensor, b: np.ndarray | Tensor | None, a: np.ndarray | Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Orientation and amplitude of the neurons of a net with 1-D input (arXiv 2007.07497; the
    group's notebook `understanding_dl/code/condense_exp/condense.ipynb`).

    theta_k = sign(b_k) arccos(w_k / sqrt(w_k^2 + b_k^2)), computed as atan2(b_k, w_k): the two
    agree for b_k != 0, and atan2 also places b_k = 0, w_k < 0 at pi (the formula gives 0);
    A_k = ||a_k|| sqrt(w_k^2 + b_k^2) (|a_k| for one output). ``b=None`` means b = 0.
    """
    w_rows = _rows(w)
    if w_rows.shape[1] != 1:
        raise ValueError(f"features_1d needs 1-D input weights (m,) or (m, 1), got shape {w_rows.shape}")
    w_col = w_rows[:, 0]
    b_col = np.zeros_like(w_col) if b is None else _rows(b, len(w_col))[:, 0]
    a_norm = np.linalg.norm(_rows(a, len(w_col)), axis=1)
    return np.arctan2(b_col, w_col), a_norm * np.hypot(w_col, b_col)


def cosine_matrix(u: np.ndarray | Tensor) -> np.ndarray:
    """D_kl = u_k . u_l / (||u_k|| ||u_l||) of the rows of u (arXiv 2105.11686); rows and columns
    of zero vectors are 0. Clipped to [-1, 1]."""
    rows = _rows(u)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def display_order(D: np.ndarray) -> np.ndarray:
    """Row order for a heatmap of D: ascending entries of the leading eigenvector v of D (largest
    eigenvalue; sign fixed so that its largest-magnitude entry is positive), as in the heatmaps
    of arXiv 2105.11686. Ties keep index order."""
    D = np.asarray(D, dtype=np.float64)
    if D.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, vectors = np.linalg.eigh(D)
    lead = vectors[:, -1]
    if lead[np.argmax(np.abs(lead))] < 0:
        lead = -lead
    return np.argsort(lead, kind="stable")


def greedy_clusters(
    D: np.ndarray, threshold: float = 0.9, signed: bool = True, order: Sequence[int] | None = None
) -> list[list[int]]:
    """Greedy clusters of a similarity matrix (arXiv 2105.11686: clusters with D > 0.9).

    Rows are visited in ``order`` (default: index order 0, 1, ...); each row not yet assigned
    seeds a cluster of itself and every unassigned row l with D[seed, l] > threshold
    (|D[seed, l]| > threshold with ``signed=False``, so u and -u join). Clusters are returned in
    the order of their seeds, each as sorted indices; every row lies in exactly one cluster.
    """
    D = np.asarray(D, dtype=np.float64)
    m = len(D)
    visit = range(m) if order is None else [int(k) for k in order]
    if sorted(visit) != list(range(m)):
        raise ValueError(f"order must be a permutation of range({m}), got {list(visit)}")
    sim = D if signed else np.abs(D)
    assigned = np.zeros(m, dtype=bool)
    clusters: list[list[int]] = []
    for seed in visit:
        if assigned[seed]:
            continue
        members = np.union1d(np.flatnonzero(~assigned & (sim[seed] > threshold)), [seed])
        assigned[members] = True
        clusters.append(members.tolist())
    return clusters


def condensed_directions(
    u: np.ndarray | Tensor,
    amplitude: np.ndarray | Tensor,
    threshold: float = 0.95,
    share: float = 0.9,
    signed: bool = True,
) -> int:
    """Number of directions that carry ``share`` of the total amplitude.

    Cluster the rows u_k greedily with cos(u_k, u_l) > threshold (`greedy_clusters`, visiting
    rows by descending amplitude A_k, so each cluster is seeded by its strongest neuron;
    ``signed=False`` uses |cos|, merging u and -u), give each cluster the mass sum_{k in C} A_k,
    and count how many clusters, largest mass first, are needed to reach share * sum_k A_k.
    With the default ``signed=True``, u and -u are two directions, as in the count of 2p
    orientations of arXiv 2105.11686. A_k is the caller's amplitude, |a_k| ||u_k|| for a
    two-layer net (arXiv 2007.07497). Returns 0 when the total amplitude is 0.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must lie in (0, 1], got {share}")
    rows = _rows(u)
    mass_k = _numpy(amplitude).ravel()
    if len(mass_k) != len(rows):
        raise ValueError(f"{len(rows)} rows of u but {len(mass_k)} amplitudes")
    total = float(mass_k.sum())
    if total <= 0:
        return 0
    order = np.argsort(-mass_k, kind="stable")
    clusters = greedy_clusters(cosine_matrix(rows), threshold, signed, order)  # type: ignore[arg-type]
    mass = np.sort([mass_k[c].sum() for c in clusters])[::-1]
    # the relative slack keeps share=1 reachable despite rounding in the cumulative sum
    needed = int(np.searchsorted(np.cumsum(mass), share * total * (1 - 1e-12))) + 1
    return min(needed, len(mass))


def big_clusters(
    D: np.ndarray, min_size: float | None = None, threshold: float = 0.9, signed: bool = True
) -> int:
    """Number of greedy clusters (`greedy_clusters`, index order) with at least ``min_size``
    members; default max(2, 0.05 m) for m rows (arXiv 2105.11686; docs/specs/condensation.md)."""
    m = len(D)
    size = max(2.0, 0.05 * m) if min_size is None else min_size
    return sum(len(c) >= size for c in greedy_clusters(D, threshold, signed))


def top_singular_energy(u: np.ndarray | Tensor) -> float:
    """sigma_1^2 / sum_i sigma_i^2 of the row-normalized matrix (rows u_k / ||u_k||, zero rows
    dropped): 1 when all rows lie on one line (arXiv 2105.11686). NaN without non-zero rows."""
    rows = _rows(u)
    norms = np.linalg.norm(rows, axis=1)
    unit = rows[norms > 0] / norms[norms > 0, None]
    if len(unit) == 0:
        return math.nan
    sigma = np.linalg.svd(unit, compute_uv=False)
    return float(sigma[0] ** 2 / np.sum(sigma**2))


def pair_fraction(D: np.ndarray, threshold: float = 0.95) -> float:
    """Fraction of pairs k < l with |D_kl| > threshold; NaN for fewer than two rows."""
    D = np.asarray(D, dtype=np.float64)
    upper = np.triu_indices(len(D), k=1)
    if len(upper[0]) == 0:
        return math.nan
    return float(np.mean(np.abs(D[upper]) > threshold))


def relative_distance(theta: np.ndarray | Tensor, theta0: np.ndarray | Tensor) -> float:
    """RD = ||theta - theta0||_2 / ||theta0||_2 of flattened parameters (arXiv 2007.07497);
    0 when both are equal, inf when theta0 = 0 and theta differs."""
    now, start = _numpy(theta).ravel(), _numpy(theta0).ravel()
    if now.shape != start.shape:
        raise ValueError(f"theta has {now.size} entries but theta0 has {start.size}")
    diff, base = float(np.linalg.norm(now - start)), float(np.linalg.norm(start))
    if base == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / base


def top_orientation_share(
    angle: np.ndarray, amplitude: np.ndarray, bin_width: float = 0.05, bins: int = 4
) -> float:
    """Share of sum_k A_k held by the ``bins`` heaviest orientation bins.

    Bins of width ``bin_width`` rad tile [-pi, pi] starting at -pi; bin j holds sum A_k over
    angles in [-pi + j w, -pi + (j+1) w). Check COND-1 (docs/specs/condensation.md): >= 0.9 in the
    condensed regime (gamma = 2), < 0.3 in the linear one (gamma = 0.5). NaN if sum A_k = 0.
    """
    theta, mass_k = _numpy(angle).ravel(), _numpy(amplitude).ravel()
    n_bins = math.ceil(2 * math.pi / bin_width)
    index = np.clip(np.floor((theta + math.pi) / bin_width).astype(np.int64), 0, n_bins - 1)
    mass = np.bincount(index, weights=mass_k, minlength=n_bins)
    total = float(mass.sum())
    if total <= 0:
        return math.nan
    return float(np.sort(mass)[::-1][:bins].sum() / total)


def _flat(*tensors: Tensor | None) -> np.ndarray:
    """The given tensors (None skipped) flattened into one float64 vector."""
    return np.concatenate([_numpy(t).ravel() for t in tensors if t is not None])


@register_probe("condensation", needs_reference=True, requires=(INPUT_LAYER,))
def condensation_probe(
    model: nn.Module,
    task: Task,
    *,
    reference: dict[str, Tensor] | None = None,
    threshold: float = 0.95,
    share: float = 0.9,
    cluster_threshold: float = 0.9,
    min_cluster: float | None = None,
    matrix: bool = False,
    features: bool = True,
) -> ProbeResult:
    """Condensation of the input-layer neurons u_k = (w_k, b_k) (arXiv 2007.07497, 2105.11686).

    Two-layer nets (`phenolab.probes.neurons.is_two_layer`) use A_k = ||a_k|| ||u_k||; deeper nets
    use the first layer only, with A_k = ||u_k||. Keys:
    ``rd_w``: RD of the effective (w, b) from ``reference`` (NaN without one);
    ``rd_a``: RD of the effective output weights a (two-layer only; NaN without a reference);
    ``n_directions``: `condensed_directions` (cos > ``threshold``, ``share`` of sum A_k);
    ``big_clusters``: `big_clusters` (D > ``cluster_threshold``, >= ``min_cluster`` members);
    ``singletons``: clusters of one neuron in the same greedy clustering;
    ``top_singular_energy``; ``pair_fraction``: pairs with |D| > ``threshold``;
    1-D input only: ``orientation_share`` (`top_orientation_share`) and, with ``features``,
    arrays ``angle`` and ``amplitude`` (`features_1d`); with ``matrix``: array ``cosine``, D in
    `display_order`. The task is not used.
    """
    two_layer = is_two_layer(model)
    if two_layer:
        w, b, a = two_layer_neurons(model)
    else:
        (w, b), a = first_layer(model), None
    u = neuron_vectors(w, b)
    a_rows = np.ones((len(u), 1)) if a is None else _rows(a, len(u))
    amplitude = np.linalg.norm(a_rows, axis=1) * np.linalg.norm(u, axis=1)
    D = cosine_matrix(u)
    out: ProbeResult = {"rd_w": math.nan}
    if reference is not None:
        w0, b0 = first_layer(model, reference)
        out["rd_w"] = relative_distance(_flat(w, b), _flat(w0, b0))
    if two_layer:
        a0 = None if reference is None else two_layer_neurons(model, reference)[2]
        out["rd_a"] = math.nan if a0 is None else relative_distance(a, a0)  # type: ignore[arg-type]
    out["n_directions"] = float(condensed_directions(u, amplitude, threshold, share))
    out["big_clusters"] = float(big_clusters(D, min_cluster, cluster_threshold))
    out["singletons"] = float(sum(len(c) == 1 for c in greedy_clusters(D, cluster_threshold)))
    out["top_singular_energy"] = top_singular_energy(u)
    out["pair_fraction"] = pair_fraction(D, threshold)
    if w.shape[1] == 1:
        angle, amp = features_1d(w, b, a_rows)
        out["orientation_share"] = top_orientation_share(angle, amp)
        if features:
            out["angle"], out["amplitude"] = angle, amp
    if matrix:
        order = display_order(D)
        out["cosine"] = D[np.ix_(order, order)]
    return out


def _module_groups(model: nn.Module) -> list[list[tuple[str, Tensor]]]:
    """(qualified name, tensor) of each module's own parameters, for modules that have any,
    in registration order."""
    groups = []
    for prefix, module in model.named_modules():
        own = [(f"{prefix}.{name}" if prefix else name, p) for name, p in module.named_parameters(recurse=False)]
        if own:
            groups.append(own)
    return groups


def _rd_of(named: list[tuple[str, Tensor]], reference: dict[str, Tensor]) -> float:
    missing = [name for name, _ in named if name not in reference]
    if missing:
        raise KeyError(f"reference has no entries {missing}; give a dict like model.state_dict()")
    return relative_distance(_flat(*(p for _, p in named)), _flat(*(reference[name] for name, _ in named)))


@register_probe("relative_distance", needs_reference=True)
def relative_distance_probe(
    model: nn.Module, task: Task, *, reference: dict[str, Tensor] | None = None
) -> ProbeResult:
    """RD = ||theta - theta0|| / ||theta0|| of the raw parameters as stored (arXiv 2007.07497)
    against ``reference`` (e.g. ``model.state_dict()`` at initialization): ``all`` parameters,
    ``first`` and ``last`` = the parameters of the first and the last module that owns any
    (registration order; for phenolab's MLP the input and output layers). Buffers are ignored;
    the task is not used."""
    if reference is None:
        raise ValueError(
            "the relative_distance probe needs reference=<a state_dict of the model at initialization>"
        )
    groups = _module_groups(model)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no parameters to compare")
    return {
        "all": _rd_of(list(model.named_parameters()), reference),
        "first": _rd_of(groups[0], reference),
        "last": _rd_of(groups[-1], reference),
    }


def top_neuron_alignment(u: np.ndarray, amplitude: np.ndarray, fraction: float = 0.5) -> float:
    """Mean pairwise |cos(u_k, u_l)| over the neurons k < l among the ceil(fraction m) of largest
    amplitude (docs/specs/loss-spike.md: the input vectors u_k = (w_k, b_k), amplitude |a_k| ||u_k||).

    Random directions in the plane give 2/pi ~ 0.64 on average; 1 when they all lie on one line
    (condensed, arXiv:2105.11686). NaN with fewer than two neurons selected.
    """
    rows = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
    amp = np.asarray(amplitude, dtype=np.float64).ravel()
    if len(amp) != len(rows):
        raise ValueError(f"{len(rows)} neurons but {len(amp)} amplitudes")
    keep = np.argsort(-amp, kind="stable")[: math.ceil(fraction * len(rows))]
    if len(keep) < 2:
        return math.nan
    D = np.abs(cosine_matrix(rows[keep]))
    return float(D[np.triu_indices(len(keep), k=1)].mean())
