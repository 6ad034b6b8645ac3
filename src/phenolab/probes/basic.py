"""Probes `loss` and `accuracy` on the training set and, when the task has one, the test set."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from phenolab.probes.evaluate import as_2d, class_labels, predict, target_matrix
from phenolab.probes.registry import ProbeResult, register_probe
from phenolab.probes.requirements import CLASS_TARGETS
from phenolab.tasks.base import Task

LossName = Literal["mse", "cross_entropy"]


def mse(h: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error ``(1 / (n k)) sum_{i,j} (h_ij - y_ij)^2`` (no factor 1/2)."""
    if h.shape != y.shape:
        raise ValueError(f"outputs {h.shape} and targets {y.shape} differ in shape")
    return float(np.mean((h - y) ** 2))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy ``-(1/n) sum_i log softmax(h_i)[c_i]`` of logits (n, k) and labels (n,)."""
    logp = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
    return float(-logp[torch.arange(len(labels)), torch.as_tensor(labels)].mean())


def _splits(task: Task) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    splits = [("train", task.x_train, task.y_train)]
    if task.x_test is not None and task.y_test is not None:
        splits.append(("test", task.x_test, task.y_test))
    return splits


@register_probe("loss")
def loss_probe(
    model: nn.Module, task: Task, *, loss: LossName | None = None, batch_size: int | None = None
) -> ProbeResult:
    """Loss on ``train`` and, if the task has a test set, ``test``.

    ``loss="mse"`` (default for regression): mean over samples and outputs of (f - y)^2, no 1/2;
    integer labels are one-hot encoded with the model's output width first.
    ``loss="cross_entropy"`` (default for classification): mean of -log softmax(f)[c], with c the
    integer label or the argmax of a one-hot target.
    """
    loss = loss or ("cross_entropy" if task.kind == "classification" else "mse")
    if loss not in ("mse", "cross_entropy"):
        raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
    out: ProbeResult = {}
    for split, x, y in _splits(task):
        h = as_2d(predict(model, x, batch_size))
        if loss == "mse":
            out[split] = mse(h, target_matrix(y, h.shape[1]))
        else:
            out[split] = cross_entropy(h, class_labels(y))
    return out


@register_probe("accuracy", requires=(CLASS_TARGETS,))
def accuracy_probe(model: nn.Module, task: Task, *, batch_size: int | None = None) -> ProbeResult:
    """Fraction of samples with argmax_j f_j(x) equal to the label (or to the one-hot argmax);
    ``train`` and, if the task has a test set, ``test``. Classification tasks only."""
    if task.kind != "classification":
        raise ValueError(f"the accuracy probe needs a classification task; task {task.name!r} is {task.kind}")
    out: ProbeResult = {}
    for split, x, y in _splits(task):
        h = as_2d(predict(model, x, batch_size))
        out[split] = float(np.mean(h.argmax(axis=1) == class_labels(y)))
    return out
