"""Measurements on an NTK matrix: its eigendecomposition, kernel-target and label-gradient
alignment, and the relative distance between two kernels (re-exported by `phenolab.probes.ntk`)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from phenolab.probes.evaluate import class_labels, target_matrix


def _matrix(K: Tensor | np.ndarray) -> np.ndarray:
    """float64 square matrix; a full (n, k, n, k) kernel becomes (n k, n k)."""
    arr = K.detach().cpu().to(torch.float64).numpy() if isinstance(K, Tensor) else np.asarray(K, dtype=np.float64)
    if arr.ndim == 4:
        arr = arr.reshape(arr.shape[0] * arr.shape[1], arr.shape[2] * arr.shape[3])
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"need a square kernel matrix (n, n) or (n, k, n, k), got shape {arr.shape}")
    return arr


def ntk_eig(K: Tensor | np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues in descending order and the eigenvectors (columns) of the symmetrized kernel
    (K + K^T)/2, the top ``k`` (default all); float64 numpy."""
    sym = _matrix(K)
    values, vectors = np.linalg.eigh((sym + sym.T) / 2)
    order = np.argsort(values)[::-1][: len(values) if k is None else k]
    return values[order], vectors[:, order]


def _targets(y: Tensor | np.ndarray) -> np.ndarray:
    """float64 (n, k): integer labels (n,) become one-hot, float targets stay."""
    y_t = torch.as_tensor(y)
    if not y_t.is_floating_point() and y_t.ndim == 1:
        return target_matrix(y_t, int(y_t.max()) + 1 if len(y_t) else 0)
    return target_matrix(y_t, 1)


def _centered(M: np.ndarray) -> np.ndarray:
    """H M H with H = I - 1 1^T / n."""
    return M - M.mean(axis=0, keepdims=True) - M.mean(axis=1, keepdims=True) + M.mean()


def _cosine(A: np.ndarray, B: np.ndarray) -> float:
    """<A, B>_F / (||A||_F ||B||_F); NaN if either is 0."""
    denom = float(np.linalg.norm(A) * np.linalg.norm(B))
    return float(np.sum(A * B) / denom) if denom > 0 else math.nan


def kernel_target_alignment(K: Tensor | np.ndarray, y: Tensor | np.ndarray, centered: bool = False) -> float:
    """A = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F) (Cristianini et al. 2001; for one output
    y^T K y / (||K||_F ||y||^2), the uncentred "CKA" of Kumar et al., arXiv:2310.06110).
    ``centered``: the same of H K H and H Y Y^T H, H = I - 1 1^T / n (Cortes et al. 2012).
    ``y``: (n,) or (n, k) targets; integer labels (n,) are one-hot encoded. NaN for a zero kernel."""
    kernel = _matrix(K)
    targets = _targets(y)
    if len(targets) != len(kernel):
        raise ValueError(f"K is {kernel.shape[0]} x {kernel.shape[1]} but y has {len(targets)} rows")
    gram = targets @ targets.T
    if centered:
        kernel, gram = _centered(kernel), _centered(gram)
    return _cosine(kernel, gram)


def label_gradient_alignment(K: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """LGA (Mok et al. 2022, CVPR, arXiv:2203.14577): the Pearson correlation of the
    entries of K and of L, L_ij = +1 if y_i = y_j else -1:

        LGA = <K - mean(K), L - mean(L)>_F / (||K - mean(K)||_F ||L - mean(L)||_F).

    Mok et al. use the NTK of the summed logits, ``empirical_ntk(..., outputs="sum")`` (their
    code differentiates the weights only: ``params=[...weight names]``). ``labels``: integer
    (n,) or one-hot / scores (n, k) (argmax). NaN when all labels are equal.
    """
    kernel = _matrix(K)
    classes = class_labels(labels)
    if len(classes) != len(kernel):
        raise ValueError(f"K is {kernel.shape[0]} x {kernel.shape[1]} but there are {len(classes)} labels")
    same = np.where(classes[:, None] == classes[None, :], 1.0, -1.0)
    return _cosine(kernel - kernel.mean(), same - same.mean())


def relative_kernel_distance(
    K1: Tensor | np.ndarray, K2: Tensor | np.ndarray, form: Literal["frobenius", "cosine"] = "frobenius"
) -> float:
    """Distance of K1 from the reference K2: "frobenius" ||K1 - K2||_F / ||K2||_F (the
    rel. Frobenius error of NTK-1a/1b, docs/specs/ntk-convergence.md); "cosine" 1 - <K1, K2>_F /
    (||K1||_F ||K2||_F) (the kernel distance of Fort et al. 2020, arXiv:2010.15110, blind to the kernel's scale)."""
    first = np.asarray(K1.detach().cpu().to(torch.float64) if isinstance(K1, Tensor) else K1, dtype=np.float64)
    second = np.asarray(K2.detach().cpu().to(torch.float64) if isinstance(K2, Tensor) else K2, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"kernels of different shapes {first.shape} and {second.shape}")
    if form == "cosine":
        return 1.0 - _cosine(first, second)
    if form != "frobenius":
        raise ValueError(f"form must be 'frobenius' or 'cosine', got {form!r}")
    diff, base = float(np.linalg.norm(first - second)), float(np.linalg.norm(second))
    if base == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / base
