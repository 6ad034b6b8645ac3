"""1-D regression tasks: a sum of sines, or any safe expression in x, on an interval."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from phenolab.config import ConfigError, ExpressionData, Problem, SinesData
from phenolab.tasks.base import Task
from phenolab.tasks.registry import register_task
from phenolab.tasks.safe_expr import compile_expression

TEST_MARGIN = 0.5  # a grid test set extends the training interval by this much on each side


def sum_of_sines(frequencies: list[float], amplitudes: list[float]) -> Callable[[Tensor], Tensor]:
    """The function y(x) = sum_j A_j sin(omega_j x), elementwise on a tensor."""

    def target(x: Tensor) -> Tensor:
        y = torch.zeros_like(x)
        for omega, amplitude in zip(frequencies, amplitudes):
            y = y + amplitude * torch.sin(omega * x)
        return y

    return target


def sines(spec: SinesData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """y = sum_j A_j sin(omega_j x) sampled on spec.interval (plus N(0, noise^2) on y_train)."""
    target = sum_of_sines(spec.frequencies, spec.amplitudes)
    info = {"frequencies": list(spec.frequencies), "amplitudes": list(spec.amplitudes)}
    return _task_1d(spec, target, generator, dtype, name="sines", info=info)


def expression(spec: ExpressionData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """y = expr(x) sampled on spec.interval (plus N(0, noise^2) on y_train); expr is checked first."""
    target = compile_expression(spec.expr)
    task = _task_1d(spec, target, generator, dtype, name="expression", info={"expr": spec.expr})
    for x in (task.x_train, task.x_test):
        if x is not None and not torch.isfinite(target(x)).all():
            low, high = float(x.min()), float(x.max())
            raise ConfigError([Problem("data.expr",
                                       f"not finite everywhere on [{low:g}, {high:g}], got {spec.expr!r}")])
    return task


def _task_1d(
    spec: SinesData | ExpressionData,
    target: Callable[[Tensor], Tensor],
    generator: torch.Generator,
    dtype: torch.dtype,
    name: str,
    info: dict,
) -> Task:
    """Inputs on a grid (sorted, grid=True) or uniform (sorted, grid=False), drawn in float64.

    Test set: a grid over [low - 0.5, high + 0.5] for grid sampling, uniform on [low, high] otherwise.
    """
    low, high = spec.interval
    on_grid = spec.sampling == "grid"
    if on_grid:
        x_train = torch.linspace(low, high, spec.n_train, dtype=torch.float64)
    else:
        x_train = _uniform_sorted(spec.n_train, low, high, generator)
    x_test = None
    if spec.n_test > 0:
        if on_grid:
            x_test = torch.linspace(low - TEST_MARGIN, high + TEST_MARGIN, spec.n_test, dtype=torch.float64)
        else:
            x_test = _uniform_sorted(spec.n_test, low, high, generator)
    x_train = x_train[:, None]
    y_train = target(x_train)
    if spec.noise > 0:
        y_train = y_train + spec.noise * torch.randn(y_train.shape, generator=generator, dtype=torch.float64)
    if x_test is not None:
        x_test = x_test[:, None].to(dtype)
    return Task(
        x_train=x_train.to(dtype),
        y_train=y_train.to(dtype),
        x_test=x_test,
        y_test=target(x_test) if x_test is not None else None,
        kind="regression",
        grid=on_grid,
        target=target,
        name=name,
        info={**info, "interval": tuple(spec.interval), "input_dim": 1, "noise": spec.noise},
    )


def _uniform_sorted(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """n sorted samples of U([low, high]) in float64."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.sort(low + (high - low) * u).values


register_task(SinesData, sines)
register_task(ExpressionData, expression)
