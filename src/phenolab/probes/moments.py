"""First-layer weight moments: the summary statistics of a committee machine.

For f(x) = (alpha/N) sum_i phi(w_i . x) with phi(h) = h + (eps/2) h^2 (Kumar et al. 2023,
arXiv:2310.06110, section 5) the function is f(x) = alpha wbar . x + (alpha eps / 2) x^T M x with

    wbar = (1/N) sum_i w_i,    M = (1/N) sum_i w_i w_i^T,

so these two moments of the input weights determine the predictor, its test loss on Gaussian
inputs (their eq. 6) and its NTK.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor, nn

from phenolab.probes.neurons import first_layer
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.probes.requirements import INPUT_LAYER
from phenolab.tasks.base import Task

__all__ = ["weight_moments", "weight_moments_probe", "decomposition"]


def weight_moments(w: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(wbar (d,), M (d, d)) of the rows w_i of w (N, d): the mean and the uncentred second moment
    (1/N) sum_i w_i w_i^T, float64."""
    arr = np.asarray(w.detach().cpu().double().numpy() if isinstance(w, Tensor) else w, dtype=np.float64)
    if arr.ndim != 2 or not len(arr):
        raise ValueError(f"need a non-empty (N, d) weight matrix, got shape {arr.shape}")
    return arr.mean(axis=0), arr.T @ arr / len(arr)


@register_probe("weight_moments", needs_reference=True, requires=(INPUT_LAYER,))
def weight_moments_probe(model: nn.Module, task: Task, *,
                         reference: Mapping[str, Tensor] | None = None) -> ProbeResult:
    """Moments of the effective input weights w_i (rows of `first_layer`: mult_1 W_1 for phenolab's
    MLP; biases ignored). Arrays ``mean`` = wbar (d,) and ``second_moment`` = M (d, d); with a
    ``reference`` (the initialization) also ``mean_change`` = wbar - wbar_0 and
    ``second_moment_change`` = M - M_0, the statistics of a centred predictor. Scalars
    ``mean_norm`` = |wbar| and ``trace`` = tr M / d. The task is not used."""
    w, _ = first_layer(model)
    mean, second = weight_moments(w)
    out: ProbeResult = {"mean": mean, "second_moment": second,
                        "mean_norm": float(np.linalg.norm(mean)), "trace": float(np.trace(second)) / len(mean)}
    if reference is not None:
        w0, _ = first_layer(model, reference)
        mean0, second0 = weight_moments(w0)
        out["mean_change"] = mean - mean0
        out["second_moment_change"] = second - second0
    return out


def decomposition(beta: np.ndarray, mean_change: np.ndarray, moment_change: np.ndarray, alpha: float,
                  eps: float) -> dict[str, float]:
    """Eq. 6 of Kumar et al. with centred statistics: the population MSE (no 1/2) of
    f = alpha wbar . x + (alpha eps / 2) x^T M x against y = (1/2) (beta . x)^2, x ~ N(0, I/D):
    ``variance`` (1/4)(|beta|^2/D - (alpha eps/D) tr M)^2, ``misalignment`` (1/(2D^2))
    ||alpha eps M - beta beta^T||_F^2, ``linear`` (alpha^2/D) |wbar|^2, and their sum ``total``."""
    b = np.asarray(beta, dtype=np.float64).reshape(-1)
    D = len(b)
    M = np.asarray(moment_change, dtype=np.float64)
    w = np.asarray(mean_change, dtype=np.float64).reshape(-1)
    variance = 0.25 * (b @ b / D - alpha * eps / D * np.trace(M)) ** 2
    misalignment = float(np.sum((alpha * eps * M - np.outer(b, b)) ** 2)) / (2 * D**2)
    linear = alpha**2 / D * float(w @ w)
    return {"variance": float(variance), "misalignment": misalignment, "linear": linear,
            "total": float(variance + misalignment + linear)}
