"""Frequency-principle measurements (Xu et al., arXiv 1807.01251 and 1901.06523).

The F-Principle says a network fits the low frequencies of its target first. It is measured by
the relative error of the output's spectrum at the peaks of the target's spectrum:

* ``frequency`` (1-D inputs): the DFT over the training grid, Delta_F(k) = |h^(k) - y^(k)| / |y^(k)|.
* ``projection`` (any input dimension): a non-uniform Fourier transform along one direction p,
  Delta_F(k) = |sum_i (h_i - y_i) e^{-i 2 pi k p.x_i}| / |sum_i y_i e^{-i 2 pi k p.x_i}|.
* ``filter`` (any input dimension): the Gaussian low/high split, in `phenolab.probes.filtering`
  (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import nn

from phenolab.probes.evaluate import as_2d, predict, target_matrix
from phenolab.probes.filtering import filter_probe, gaussian_filter_split
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

__all__ = [
    "local_maxima",
    "spectrum_peaks",
    "relative_spectral_error",
    "first_principal_component",
    "projected_spectrum",
    "gaussian_filter_split",
    "frequency_probe",
    "projection_probe",
    "filter_probe",
    "peak_key",
    "frequency_keys",
    "low_frequency_share",
]

PEAK_FLOOR = 1e-3  # 1-D DFT: drops leakage ripples only
PROJECTION_FLOOR = 0.1  # projected spectra of random samples have sidelobes of a few percent


def local_maxima(mag: np.ndarray, floor: float = PEAK_FLOOR) -> np.ndarray:
    """Indices i, 0 < i < len(mag) - 1, with mag[i] > mag[i-1] and mag[i] > mag[i+1] and
    mag[i] >= floor * max(mag[1:]) (the floor drops leakage ripples; index 0, the DC term,
    does not set it)."""
    mag = np.asarray(mag, dtype=np.float64)
    if len(mag) < 3:
        return np.zeros(0, dtype=np.int64)
    inner = mag[1:-1]
    is_peak = (inner > mag[:-2]) & (inner > mag[2:]) & (inner >= floor * mag[1:].max())
    return np.flatnonzero(is_peak) + 1


def _vector(y: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one output column), got shape {arr.shape}")
    return arr


def spectrum_peaks(y: np.ndarray, max_peaks: int | None = None, *, floor: float = PEAK_FLOOR) -> np.ndarray:
    """Ascending DFT indices k of the peaks of |DFT(y)|, at most the `max_peaks` lowest.

    A peak is a k in 1 .. N//2 - 1 whose magnitude is strictly greater than at k - 1 and k + 1
    and at least `floor` (1e-3) times the largest magnitude over k = 1 .. N//2 (1807.01251).
    """
    y = _vector(y, "y")
    mag = np.abs(np.fft.fft(y))[: len(y) // 2 + 1]
    peaks = local_maxima(mag, floor)
    return peaks if max_peaks is None else peaks[:max_peaks]


def relative_spectral_error(h: np.ndarray, y: np.ndarray, peaks: Sequence[int] | np.ndarray) -> np.ndarray:
    """Delta_F(k) = |DFT(h)(k) - DFT(y)(k)| / |DFT(y)(k)| at the indices `peaks` (1807.01251).

    0 for h = y, 1 for h = 0; inf where DFT(y)(k) = 0.
    """
    h, y = _vector(h, "h"), _vector(y, "y")
    if h.shape != y.shape:
        raise ValueError(f"h {h.shape} and y {y.shape} differ in shape")
    idx = np.asarray(peaks, dtype=np.int64)
    diff, ref = np.abs(np.fft.fft(h - y))[idx], np.abs(np.fft.fft(y))[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        return diff / ref


def _column(model: nn.Module, task: Task, output: int, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Model output column `output` and the matching target column on the training inputs."""
    h = as_2d(predict(model, task.x_train, batch_size))
    y = target_matrix(task.y_train, h.shape[1])
    if h.shape != y.shape:
        raise ValueError(f"model outputs {h.shape} do not match the targets {y.shape}")
    if not 0 <= output < h.shape[1]:
        raise ValueError(f"output must lie in [0, {h.shape[1]}), got {output}")
    return h[:, output], y[:, output]


def peak_key(j: int) -> str:
    """The key of peak j's Delta_F float in the result of `frequency_probe` and `projection_probe`
    (peaks in ascending frequency, j = 0 the lowest)."""
    return f"rel_err_{j}"


def frequency_keys(n_peaks: int, probe: str = "frequency") -> list[str]:
    """The metric names under which probe `probe` (``frequency`` or ``projection``) records the
    Delta_F of its `n_peaks` peaks, lowest frequency first (the recorder prefixes ``<probe>/``)."""
    return [f"{probe}/{peak_key(j)}" for j in range(n_peaks)]


def _per_peak(values: np.ndarray) -> dict[str, float]:
    return {peak_key(j): float(v) for j, v in enumerate(values)}


@register_probe("frequency")
def frequency_probe(
    model: nn.Module,
    task: Task,
    *,
    output: int = 0,
    max_peaks: int | None = None,
    peaks: Sequence[int] | None = None,
    floor: float = PEAK_FLOOR,
    spectra: bool = False,
    batch_size: int | None = None,
) -> ProbeResult:
    """Delta_F at the peaks of the target's DFT over the 1-D training inputs, sorted by x.

    Returns ``rel_err`` (P,), ``peak_index`` (P,), ``peak_freq`` (P,) the angular frequency
    2 pi k / (N dx) with dx = (x_max - x_min) / (N - 1), and one float ``rel_err_j`` per peak.
    ``peaks`` overrides the peaks found by `spectrum_peaks` (with `floor`) on the training
    targets; with ``spectra=True`` also ``output_spectrum`` and ``target_spectrum``, |DFT| for
    k = 0 .. N//2. Integer labels are one-hot encoded first; ``output`` picks the column.
    """
    if task.input_dim != 1:
        raise ValueError(
            f"the frequency probe needs 1-D inputs, task {task.name!r} has d = {task.input_dim}; "
            "use the 'projection' or 'filter' probe"
        )
    h, y = _column(model, task, output, batch_size)
    x = task.x_train[:, 0].detach().cpu().double().numpy()
    order = np.argsort(x, kind="stable")
    x, h, y = x[order], h[order], y[order]
    n = len(x)
    idx = spectrum_peaks(y, max_peaks, floor=floor) if peaks is None else np.asarray(peaks, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"peaks must lie in [0, {n}), got {idx.tolist()}")
    dx = (x[-1] - x[0]) / (n - 1) if n > 1 else 1.0
    rel_err = relative_spectral_error(h, y, idx)
    out: ProbeResult = {
        "rel_err": rel_err,
        "peak_index": idx,
        "peak_freq": 2 * np.pi * idx / (n * dx),
        **_per_peak(rel_err),
    }
    if spectra:
        out["output_spectrum"] = np.abs(np.fft.fft(h))[: n // 2 + 1]
        out["target_spectrum"] = np.abs(np.fft.fft(y))[: n // 2 + 1]
    return out


def first_principal_component(x: np.ndarray) -> np.ndarray:
    """Unit vector of largest variance of the rows of x (n, d), signed so that its entry of
    largest magnitude is positive."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    p = vt[0]
    return p if p[np.argmax(np.abs(p))] > 0 else -p


def projected_spectrum(values: np.ndarray, t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Complex F(k) = sum_i values_i e^{-i 2 pi k t_i} on the frequencies k (1901.06523)."""
    return np.exp(-2j * np.pi * np.outer(k, t)) @ np.asarray(values, dtype=np.float64)


@register_probe("projection")
def projection_probe(
    model: nn.Module,
    task: Task,
    *,
    output: int = 0,
    direction: Sequence[float] | np.ndarray | None = None,
    k_max: float | None = None,
    n_k: int = 200,
    max_peaks: int | None = None,
    floor: float = PROJECTION_FLOOR,
    spectra: bool = False,
    batch_size: int | None = None,
) -> ProbeResult:
    """Delta_F along a unit direction p at the peaks of the target's projected spectrum.

    t_i = p.x_i with p the normalised `direction` or, by default, the first principal component
    of the training inputs. k runs over ``n_k`` evenly spaced values in [0, k_max], in cycles per
    unit of t; the default k_max = 10 / (max t - min t) spans 10 cycles over the projected data
    range (resolution about 1 / range, so 20 grid points per resolved frequency). Peaks are the
    local maxima of |sum_i y_i e^{-i 2 pi k t_i}| as in `local_maxima` (k = 0 and k_max
    excluded) of at least `floor` (default 0.1, above the few-percent sidelobes that the
    random sampling of t creates) times the largest, the lowest `max_peaks` of them, and
    Delta_F(k) = |sum_i (h_i - y_i) e^{-i 2 pi k t_i}| / |sum_i y_i e^{-i 2 pi k t_i}|.
    Returns ``rel_err`` (P,), ``k`` (P,) and one float ``rel_err_j`` per peak; with
    ``spectra=True`` also ``k_grid``, ``target_spectrum`` and ``output_spectrum`` (magnitudes).
    """
    if n_k < 3:
        raise ValueError(f"n_k must be at least 3, got {n_k}")
    h, y = _column(model, task, output, batch_size)
    x = task.x_train.detach().cpu().double().numpy().reshape(len(h), -1)
    p = first_principal_component(x) if direction is None else np.asarray(direction, dtype=np.float64).ravel()
    if p.shape != (x.shape[1],) or not np.linalg.norm(p) > 0:
        raise ValueError(f"direction must be a nonzero vector of length {x.shape[1]}")
    t = x @ (p / np.linalg.norm(p))
    if k_max is None:
        spread = t.max() - t.min()
        k_max = 10.0 / spread if spread > 0 else 1.0
    grid = np.linspace(0.0, k_max, n_k)
    fy, fr = projected_spectrum(y, t, grid), projected_spectrum(h - y, t, grid)
    idx = local_maxima(np.abs(fy), floor)
    idx = idx if max_peaks is None else idx[:max_peaks]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.abs(fr[idx]) / np.abs(fy[idx])
    out: ProbeResult = {"rel_err": rel_err, "k": grid[idx], **_per_peak(rel_err)}
    if spectra:
        out["k_grid"] = grid
        out["target_spectrum"] = np.abs(fy)
        out["output_spectrum"] = np.abs(projected_spectrum(h, t, grid))
    return out


def low_frequency_share(values: np.ndarray, fraction: float = 0.05) -> float:
    """rho_LF: the share of the DFT energy of `values` (N samples, evenly spaced) in the lowest
    `fraction` of the frequencies.

    With F = DFT(values) and K = ceil(fraction (N // 2 + 1)) the number of low frequencies
    among the N // 2 + 1 non-negative ones (13 of 257 for N = 512, fraction = 0.05),
    rho_LF = sum_{|k| < K} |F_k|^2 / sum_k |F_k|^2 over both signs of k (Parseval: the
    denominator is N sum_i values_i^2). The zero frequency (the mean) counts as low. 1 for a
    constant, NaN for all zeros.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    n = arr.size
    if n == 0:
        raise ValueError("values is empty")
    energy = np.abs(np.fft.fft(arr)) ** 2
    total = float(energy.sum())
    if total == 0:
        return math.nan
    k = np.arange(n)
    low = np.minimum(k, n - k) < math.ceil(fraction * (n // 2 + 1))
    return float(energy[low].sum() / total)
