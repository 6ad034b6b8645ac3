"""The empirical NTK on held-out inputs: kernel-target alignment on test points, and the test loss
of kernel regression with the current NTK (the infinite-time limit of the linearized network).

Kumar, Bordelon, Gershman & Pehlevan (2023), "Grokking as the transition from lazy to rich
training dynamics", arXiv:2310.06110: the alignment of the NTK with the task, measured on
held-out points, grows when the network learns features; the lazy (kernel) baseline is ridgeless
regression with the initial NTK (their Fig. 1b, black line).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from phenolab.probes.evaluate import as_2d, predict, target_matrix
from phenolab.probes.ntk import empirical_ntk, kernel_target_alignment
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.tasks.base import Task

__all__ = ["kernel_coefficients", "kernel_regression", "ntk_heldout_probe", "ntk_regression_probe"]


def _test_split(task: Task, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if task.x_test is None or task.y_test is None:
        raise ValueError(f"the {name} probe needs a task with a test set (e.g. data.n_test > 0); "
                         f"task {task.name!r} has none")
    return task.x_test, task.y_test


def _first(n: int, points: int) -> int:
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    return min(n, points)


@register_probe("ntk_heldout")
def ntk_heldout_probe(model: nn.Module, task: Task, *, points: int = 400) -> ProbeResult:
    """The empirical NTK K (``outputs="trace"``) on the first ``points`` test inputs, against their
    targets y. Keys: ``alignment`` = y^T K y / (||K||_F ||y||^2), the uncentred kernel-target
    alignment that Kumar et al. call CKA (one output; several outputs: <K, Y Y^T>_F / (||K||_F
    ||Y Y^T||_F)); ``alignment_centered``, the same of H K H and H Y Y^T H (Cortes et al. 2012);
    ``trace`` = tr K / n. Needs a task with a test set."""
    x, y = _test_split(task, "ntk_heldout")
    n = _first(len(x), points)
    kernel = empirical_ntk(model, x[:n])
    targets = target_matrix(y[:n], task.output_dim)
    return {
        "alignment": kernel_target_alignment(kernel, targets),
        "alignment_centered": kernel_target_alignment(kernel, targets, centered=True),
        "trace": float(torch.diagonal(kernel).sum()) / n,
    }


def kernel_coefficients(k_train: np.ndarray, residual: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """c = [K(X, X) + ridge I]^-1 r in float64: a Cholesky solve when the Gram matrix is positive
    definite, else least squares (the minimum-norm solution of a singular ridgeless system)."""
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError(f"ridge must be finite and >= 0, got {ridge}")
    gram = np.asarray(k_train, dtype=np.float64)
    gram = (gram + gram.T) / 2 + ridge * np.eye(len(gram))
    rhs = np.asarray(residual, dtype=np.float64)
    try:
        chol = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return np.linalg.solve(chol.T, np.linalg.solve(chol, rhs))


def kernel_regression(k_train: np.ndarray, k_test: np.ndarray, residual: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """K(x*, X) [K(X, X) + ridge I]^-1 r for every test row of ``k_test`` (n*, n), float64
    (`kernel_coefficients`)."""
    return np.asarray(k_test, dtype=np.float64) @ kernel_coefficients(k_train, residual, ridge)


@register_probe("ntk_regression")
def ntk_regression_probe(model: nn.Module, task: Task, *, points: int = 2000, ridge: float = 0.0) -> ProbeResult:
    """Test MSE of kernel regression with the empirical NTK at the current parameters, started
    from the current function f: f_inf(x) = f(x) + K(x, X) [K(X, X) + ridge I]^-1 (y - f(X)), X the
    training inputs (the limit t -> infinity of gradient flow on the network linearized here, Lee et
    al. 2019, arXiv:1902.06720). For a centred network at initialization (f = 0) this is ridgeless
    kernel regression with the initial NTK, the lazy baseline of Kumar et al. (arXiv:2310.06110).
    Keys: ``test`` (MSE on the first ``points`` test inputs, no 1/2), ``train`` (on the training set;
    ~0 when ridgeless). One output (``outputs="trace"`` kernel) per target column. Needs a test set."""
    x_test, y_test = _test_split(task, "ntk_regression")
    n = _first(len(x_test), points)
    x_test, y_test = x_test[:n], y_test[:n]
    x, y = task.x_train, task.y_train
    f_train, f_test = as_2d(predict(model, x)), as_2d(predict(model, x_test))
    k_train = empirical_ntk(model, x).cpu().to(torch.float64).numpy()
    k_test = empirical_ntk(model, x_test, x).cpu().to(torch.float64).numpy()
    residual = target_matrix(y, f_train.shape[1]) - f_train
    coef = kernel_coefficients(k_train, residual, ridge)
    fit_train = f_train + k_train @ coef
    fit_test = f_test + k_test @ coef
    return {
        "test": float(np.mean((fit_test - target_matrix(y_test, f_test.shape[1])) ** 2)),
        "train": float(np.mean((fit_train - target_matrix(y, f_train.shape[1])) ** 2)),
    }
