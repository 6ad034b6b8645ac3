"""Gaussian-filter measurement of the F-Principle in high dimension (arXiv 1901.06523).

With D_ij = ||x_i - x_j||^2 and G_ij = exp(-D_ij / (2 s)), the row-normalised kernel
K_ij = G_ij / sum_j G_ij smooths any function sampled at the inputs: f_low = K f is its
low-frequency part, f_high = f - f_low the rest. The probe compares the network output h
with the target y part by part:

    e_low  = ||h_low - y_low||_F / ||y_low||_F,    e_high = ||h_high - y_high||_F / ||y_high||_F.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from phenolab.probes.evaluate import as_2d, predict, target_matrix
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

DEFAULT_DELTAS = (0.05, 0.1, 0.2)
CACHE_BYTES = 512 * 2**20  # kernels kept between calls, at most


def _flat(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def squared_distances(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """D_ij = ||x_i - x_j||^2 (float64), by ||a||^2 + ||b||^2 - 2 a.b clamped at 0, zero diagonal."""
    x = _flat(x)
    sq = np.einsum("ij,ij->i", x, x)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def smoothing_kernel(d: np.ndarray, s: float) -> np.ndarray:
    """K_ij = G_ij / sum_j G_ij with G_ij = exp(-D_ij / (2 s)); rows sum to 1."""
    if not s > 0:
        raise ValueError(f"filter scale s must be > 0, got {s}")
    g = np.exp(-d / (2.0 * s))
    return g / g.sum(axis=1, keepdims=True)


def gaussian_filter_split(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(y_low, y_high) = (K y, y - K y) for the Gaussian kernel of scale s on the inputs x.

    x is flattened to (n, d); y is (n,) or (n, k) and the parts have y's shape (float64).
    """
    y_arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
    y_arr = np.asarray(y_arr, dtype=np.float64)
    low = smoothing_kernel(squared_distances(x), s) @ y_arr
    return low, y_arr - low


class _KernelCache:
    """D, median(D) and kernels of the last training inputs seen, reused while that tensor is
    unchanged (same object, same in-place version), so that probing every step costs two (n, n)
    products per scale instead of O(n^2 d). Kernels beyond `CACHE_BYTES` are not kept."""

    def __init__(self) -> None:
        self._ref: weakref.ref | None = None
        self._stamp: tuple = ()
        self._kernels: dict[tuple[str, float], tuple[float, np.ndarray]] = {}
        self._median: float | None = None
        self._dists: np.ndarray | None = None

    def _sync(self, x: torch.Tensor) -> None:
        stamp = (x._version, tuple(x.shape), x.dtype, x.device)
        if self._ref is None or self._ref() is not x or self._stamp != stamp:
            self._clear()
            # the cache lives only as long as the training inputs it was computed from
            self._ref, self._stamp = weakref.ref(x, lambda _: self._clear()), stamp

    def _clear(self) -> None:
        self._ref, self._stamp = None, ()
        self._kernels, self._median, self._dists = {}, None, None

    def _distances(self, x: torch.Tensor) -> np.ndarray:
        if self._dists is None:
            self._dists = squared_distances(x)
        return self._dists

    def median(self, x: torch.Tensor) -> float:
        self._sync(x)
        if self._median is None:
            d = self._distances(x)
            self._median = float(np.median(d[np.triu_indices(len(d), k=1)]))
        return self._median

    def kernel(self, x: torch.Tensor, how: str, value: float) -> tuple[float, np.ndarray]:
        """(s, K) for s = value (how="scale") or s = value * median(D) (how="delta")."""
        self._sync(x)
        key = (how, float(value))
        if key in self._kernels:
            return self._kernels[key]
        s = value * self.median(x) if how == "delta" else float(value)
        kernel = smoothing_kernel(self._distances(x), s)
        if (len(self._kernels) + 2) * kernel.nbytes <= CACHE_BYTES:
            self._kernels[key] = (s, kernel)
        return s, kernel


_CACHE = _KernelCache()


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b||_F / ||b||_F (nan when b = 0)."""
    ref = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / ref) if ref > 0 else float("nan")


def scale_keys(j: int) -> tuple[str, str]:
    """The keys of e_low and e_high at filter scale j in the result of `filter_probe`."""
    return f"e_low_{j}", f"e_high_{j}"


def filter_keys(n_scales: int, probe: str = "filter") -> list[tuple[str, str]]:
    """The metric names (e_low, e_high) the ``filter`` probe records per scale, in the order of its
    scales (the recorder prefixes ``<probe>/``)."""
    return [(f"{probe}/{low}", f"{probe}/{high}") for low, high in map(scale_keys, range(n_scales))]


@register_probe("filter")
def filter_probe(
    model: nn.Module,
    task: Task,
    *,
    deltas: Sequence[float] | None = None,
    scales: Sequence[float] | None = None,
    softmax: bool = False,
    batch_size: int | None = None,
) -> ProbeResult:
    """e_low and e_high (see the module docstring) on the training inputs, one per filter scale.

    Scales: s = delta * median_{i<j} D_ij for each of ``deltas`` (default 0.05, 0.1, 0.2), or
    ``scales`` giving s directly. Targets: integer labels become one-hot with the model's output
    width, float targets are used as they are. ``softmax=True`` compares softmax(h) instead of h
    (for a model that outputs logits). Returns arrays ``e_low``, ``e_high``, ``s`` (S,) and
    floats ``e_low_j``, ``e_high_j`` per scale. Cost O(n^2 d) once per training set, then
    O(n^2 k) per call.
    """
    if deltas is not None and scales is not None:
        raise ValueError("give either deltas or scales, not both")
    how, values = ("scale", scales) if scales is not None else ("delta", deltas or DEFAULT_DELTAS)
    h = predict(model, task.x_train, batch_size)
    h = as_2d(torch.softmax(h.double().reshape(len(h), -1), dim=1) if softmax else h)  # type: ignore[assignment]
    y = target_matrix(task.y_train, h.shape[1])
    if h.shape != y.shape:
        raise ValueError(f"model outputs {h.shape} do not match the targets {y.shape}")
    s_list, e_low, e_high = [], [], []
    for value in values:
        s, k = _CACHE.kernel(task.x_train, how, value)
        h_low, y_low = k @ h, k @ y
        s_list.append(s)
        e_low.append(_relative(h_low, y_low))
        e_high.append(_relative(h - h_low, y - y_low))
    out: ProbeResult = {"e_low": np.array(e_low), "e_high": np.array(e_high), "s": np.array(s_list)}
    for j in range(len(s_list)):
        low, high = scale_keys(j)
        out[low], out[high] = float(e_low[j]), float(e_high[j])
    return out
