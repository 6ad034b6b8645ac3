"""Evaluate any user model on inputs without disturbing it, and shape outputs and targets.

`predict` is the only place where probes call a model: no gradients, eval mode for the call
(dropout off, batch-norm running statistics), and every submodule's own ``training`` flag put
back afterwards, so a probe can run in the middle of training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return None, None


def to_model_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`x` cast to the dtype and moved to the device of the model's first floating-point parameter
    or buffer (unchanged for a model without any, or for integer inputs)."""
    dtype, device = _model_dtype_device(model)
    if dtype is not None and x.is_floating_point():
        x = x.to(device=device, dtype=dtype)
    return x


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the block; every submodule's ``training`` flag is put back
    afterwards, even on error."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, flag in flags:
            module.training = flag


def predict(model: nn.Module, x: torch.Tensor | np.ndarray, batch_size: int | None = None) -> torch.Tensor:
    """Outputs ``model(x)`` under ``torch.no_grad()`` in eval mode, concatenated over batches.

    ``x`` is cast to the dtype (and moved to the device) of the model's first floating-point
    parameter or buffer; a model without any keeps ``x`` as it is. ``batch_size=None`` runs one
    batch. Each submodule's ``training`` flag is restored afterwards, even on error.
    """
    x = to_model_input(model, torch.as_tensor(x))
    with evaluating(model):
        if batch_size is None or batch_size >= len(x):
            out = model(x)
        else:
            out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
    return out.detach()


def as_2d(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """float64 numpy copy with a trailing output axis: (n,) -> (n, 1), (n, k) kept."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def target_matrix(y: torch.Tensor | np.ndarray, width: int) -> np.ndarray:
    """Targets as a float64 (n, k) matrix: integer labels (n,) become one-hot with `width`
    columns, float targets are used as they are."""
    y_t = torch.as_tensor(y)
    if not y_t.is_floating_point() and y_t.ndim == 1:
        labels = y_t.long().cpu().numpy()
        if labels.size and (labels.min() < 0 or labels.max() >= width):
            raise ValueError(f"labels must lie in [0, {width}), the model's output width")
        onehot = np.zeros((len(labels), width))
        onehot[np.arange(len(labels)), labels] = 1.0
        return onehot
    return as_2d(y_t)


def class_labels(y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Integer labels (n,): integer targets as they are, (n, k) one-hot or scores by argmax."""
    y_t = torch.as_tensor(y)
    if y_t.ndim == 1 and not y_t.is_floating_point():
        return y_t.long().cpu().numpy()
    if y_t.ndim == 2 and y_t.shape[1] > 1:
        return y_t.argmax(dim=1).cpu().numpy()
    raise ValueError(
        f"cannot read class labels from targets of shape {tuple(y_t.shape)} and dtype {y_t.dtype}; "
        "use integer labels (n,) or one-hot targets (n, k)"
    )
