"""d-dimensional regression tasks on x ~ U([-1, 1]^d): a random teacher net, a sum of ridge sines."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from phenolab.config import RidgeData, TeacherData
from phenolab.tasks.base import Task

# the teacher's activations (tasks may not import phenolab.models)
_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "sin": torch.sin,
}


def teacher(spec: TeacherData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """y = sum_k a_k sigma(w_k . x), w_k ~ N(0, I/d), a_k ~ N(0, 1/width), x ~ U([-1, 1]^d)."""
    d, width = spec.input_dim, spec.width
    w = torch.randn(width, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    a = torch.randn(width, 1, generator=generator, dtype=torch.float64) / math.sqrt(width)
    sigma = _ACTIVATIONS[spec.activation]

    def target(x: Tensor) -> Tensor:
        return sigma(x @ w.T.to(x.dtype)) @ a.to(x.dtype)

    info = {"width": width, "activation": spec.activation, "teacher_w": w.to(dtype), "teacher_a": a.to(dtype)}
    return _task_on_cube(spec, target, generator, dtype, name="teacher", info=info)


def ridge(spec: RidgeData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """y = sum_j A_j sin(omega_j u_j . x), u_j uniform random unit vectors, x ~ U([-1, 1]^d)."""
    directions = torch.randn(len(spec.frequencies), spec.input_dim, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    omegas = torch.tensor(spec.frequencies, dtype=torch.float64)
    amplitudes = torch.tensor(spec.amplitudes, dtype=torch.float64)

    def target(x: Tensor) -> Tensor:
        phases = (x @ directions.T.to(x.dtype)) * omegas.to(x.dtype)
        return torch.sin(phases) @ amplitudes.to(x.dtype)[:, None]

    info = {
        "frequencies": list(spec.frequencies),
        "amplitudes": list(spec.amplitudes),
        "directions": directions.to(dtype),
    }
    return _task_on_cube(spec, target, generator, dtype, name="ridge", info=info)


def _task_on_cube(
    spec: TeacherData | RidgeData,
    target: Callable[[Tensor], Tensor],
    generator: torch.Generator,
    dtype: torch.dtype,
    name: str,
    info: dict,
) -> Task:
    """n_train + n_test points of U([-1, 1]^d) drawn in float64; N(0, noise^2) added to y_train only."""
    n = spec.n_train + spec.n_test
    x = 2 * torch.rand(n, spec.input_dim, generator=generator, dtype=torch.float64) - 1
    y = target(x)
    x_train, y_train = x[: spec.n_train], y[: spec.n_train]
    if spec.noise > 0:
        y_train = y_train + spec.noise * torch.randn(y_train.shape, generator=generator, dtype=torch.float64)
    has_test = spec.n_test > 0
    return Task(
        x_train=x_train.to(dtype),
        y_train=y_train.to(dtype),
        x_test=x[spec.n_train :].to(dtype) if has_test else None,
        y_test=y[spec.n_train :].to(dtype) if has_test else None,
        kind="regression",
        target=target,
        name=name,
        info={**info, "input_dim": spec.input_dim, "noise": spec.noise},
    )
