"""Synthetic tasks of the NTK and Hessian experiments: x1 x2 products, Gaussian mixtures, linear and
quadratic teachers."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from phenolab.config import GaussianMixtureData, LinearTeacherData, ProductData, QuadraticTeacherData
from phenolab.tasks.base import Task
from phenolab.tasks.registry import register_task


def product(spec: ProductData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """y = x_1 x_2 with x_i = (cos t_i, sin t_i), t_i = 2 pi i / n (no randomness), or x_i ~ N(0, I_2)."""
    if spec.sampling == "circle":
        t = 2 * math.pi * torch.arange(spec.n_train, dtype=torch.float64) / spec.n_train
        x = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    else:
        x = torch.randn(spec.n_train, 2, generator=generator, dtype=torch.float64)

    def target(z: Tensor) -> Tensor:
        return (z[:, 0] * z[:, 1])[:, None]

    y = target(x)
    if spec.noise > 0:
        y = y + spec.noise * torch.randn(y.shape, generator=generator, dtype=torch.float64)
    return Task(x_train=x.to(dtype), y_train=y.to(dtype), kind="regression", target=target, name="product",
                info={"input_dim": 2})


def gaussian_mixture(spec: GaussianMixtureData, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> Task:
    """Balanced labels c_i = i mod k (shuffled); x_i ~ N(mu_{c_i}, I), mu_c ~ N(0, spread^2 I)."""
    k, d, n = spec.classes, spec.input_dim, spec.n_train + spec.n_test
    centres = spec.spread * torch.randn(k, d, generator=generator, dtype=torch.float64)
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=generator)]
    x = centres[labels] + torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = torch.nn.functional.one_hot(labels, k).to(dtype) if spec.one_hot else labels
    has_test = spec.n_test > 0
    return Task(x_train=x[: spec.n_train].to(dtype), y_train=y[: spec.n_train],
                x_test=x[spec.n_train:].to(dtype) if has_test else None,
                y_test=y[spec.n_train:] if has_test else None, kind="classification", name="gaussian_mixture",
                info={"n_classes": k, "centres": centres.to(dtype), "input_dim": d})


def linear_teacher(spec: LinearTeacherData, generator: torch.Generator,
                   dtype: torch.dtype = torch.float32) -> Task:
    """x ~ N(0, I_d), y = beta . x, beta ~ N(0, scale^2 / d I)."""
    d, n = spec.input_dim, spec.n_train + spec.n_test
    beta = spec.scale / math.sqrt(d) * torch.randn(d, 1, generator=generator, dtype=torch.float64)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)

    def target(z: Tensor) -> Tensor:
        return z @ beta.to(z.dtype)

    return _teacher_task(spec, x, target, generator, dtype, "linear_teacher", {"beta": beta.to(dtype), "input_dim": d})


def quadratic_teacher(spec: QuadraticTeacherData, generator: torch.Generator,
                      dtype: torch.dtype = torch.float32) -> Task:
    """beta ~ N(0, I_d) (drawn first), x ~ N(0, I_d / d), y = (1/2) (beta . x)^2 (Kumar et al. 2023,
    arXiv:2310.06110 section 5); noise only on the training targets. ``sample(n, generator)`` draws
    fresh inputs from N(0, I_d / d)."""
    d, n = spec.input_dim, spec.n_train + spec.n_test
    beta = torch.randn(d, 1, generator=generator, dtype=torch.float64)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64) / math.sqrt(d)

    def target(z: Tensor) -> Tensor:
        return 0.5 * (z @ beta.to(z.dtype)) ** 2

    def sample(count: int, gen: torch.Generator) -> Tensor:
        return (torch.randn(count, d, generator=gen, dtype=torch.float64) / math.sqrt(d)).to(dtype)

    return _teacher_task(spec, x, target, generator, dtype, "quadratic_teacher",
                         {"beta": beta.to(dtype), "input_dim": d}, sample=sample)


def _teacher_task(spec: LinearTeacherData | QuadraticTeacherData, x: Tensor, target: Callable[[Tensor], Tensor],
                  generator: torch.Generator, dtype: torch.dtype, name: str, info: dict[str, Any],
                  sample: Callable[[int, torch.Generator], Tensor] | None = None) -> Task:
    """The regression task y = target(x) on float64 inputs x (n_train + n_test rows): the first
    n_train rows train, with Gaussian noise of std ``spec.noise`` on their targets only."""
    y = target(x)
    y_train = y[: spec.n_train]
    if spec.noise > 0:
        y_train = y_train + spec.noise * torch.randn(y_train.shape, generator=generator, dtype=torch.float64)
    has_test = spec.n_test > 0
    return Task(x_train=x[: spec.n_train].to(dtype), y_train=y_train.to(dtype),
                x_test=x[spec.n_train:].to(dtype) if has_test else None,
                y_test=y[spec.n_train:].to(dtype) if has_test else None, kind="regression", target=target,
                name=name, info=info, sample=sample)


register_task(ProductData, product)
register_task(GaussianMixtureData, gaussian_mixture)
register_task(LinearTeacherData, linear_teacher)
register_task(QuadraticTeacherData, quadratic_teacher)
