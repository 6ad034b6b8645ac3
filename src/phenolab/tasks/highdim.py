"""d-dimensional regression tasks on x ~ U([-1, 1]^d): a random teacher net, a sum of ridge sines."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from phenolab.activations import get_activation
from phenolab.config import CoordinateSinesData, RidgeData, TeacherData
from phenolab.tasks.base import Task
from phenolab.tasks.registry import register_task


def teacher(spec: TeacherData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """y = sum_k a_k sigma(w_k . x), w_k ~ N(0, I/d), a_k ~ N(0, 1/width), x ~ U([-1, 1]^d)."""
    d, width = spec.input_dim, spec.width
    w = torch.randn(width, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    a = torch.randn(width, 1, generator=generator, dtype=torch.float64) / math.sqrt(width)
    sigma = get_activation(spec.activation)

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


def coordinate_sines(spec: CoordinateSinesData, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> Task:
    """y = sum_k A sin(omega x_k + phi) over the d coordinates, x ~ U([low, high]^d)
    (the initial-condensation target of Zhou et al. 2021: 3.5 sin(5 x_k + 1) on [-4, 2]^5)."""
    a, omega, phi = spec.amplitude, spec.frequency, spec.phase

    def target(x: Tensor) -> Tensor:
        return a * torch.sin(omega * x + phi).sum(dim=1, keepdim=True)

    info = {"amplitude": a, "frequency": omega, "phase": phi, "interval": list(spec.interval)}
    return _task_on_cube(spec, target, generator, dtype, name="coordinate_sines", info=info, interval=spec.interval)


def _task_on_cube(
    spec: TeacherData | RidgeData | CoordinateSinesData,
    target: Callable[[Tensor], Tensor],
    generator: torch.Generator,
    dtype: torch.dtype,
    name: str,
    info: dict,
    interval: tuple[float, float] = (-1.0, 1.0),
) -> Task:
    """n_train + n_test points of U([low, high]^d) drawn in float64; N(0, noise^2) added to y_train only."""
    n = spec.n_train + spec.n_test
    low, high = interval
    x = low + (high - low) * torch.rand(n, spec.input_dim, generator=generator, dtype=torch.float64)
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


register_task(TeacherData, teacher)
register_task(RidgeData, ridge)
register_task(CoordinateSinesData, coordinate_sines)
