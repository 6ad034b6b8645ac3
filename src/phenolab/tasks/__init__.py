"""Tasks: the data of a run, built from a data spec by `make_task` (one registered builder per
data kind, `phenolab.tasks.registry`)."""

from __future__ import annotations

from typing import Any, cast

import torch

from phenolab.config import DataSpec
from phenolab.tasks.base import Task
from phenolab.tasks.digits import digits
from phenolab.tasks.functions1d import expression, sines
from phenolab.tasks.highdim import coordinate_sines, ridge, teacher
from phenolab.tasks.registry import register_task, task_builder, task_kinds
from phenolab.tasks.synthetic import gaussian_mixture, linear_teacher, product, quadratic_teacher


def make_task(spec: DataSpec, seed: int, dtype: torch.dtype = torch.float32) -> Task:
    """The task of `spec`; its randomness comes from a generator seeded by spec.seed, else `seed`."""
    own_seed = cast(Any, spec).seed  # every data kind has one (a KindSpec to mypy)
    generator = torch.Generator().manual_seed(own_seed if own_seed is not None else seed)
    return task_builder(spec.kind)(spec, generator, dtype)


__all__ = ["Task", "make_task", "register_task", "task_builder", "task_kinds", "sines", "expression", "teacher",
           "ridge", "digits", "coordinate_sines", "product", "gaussian_mixture", "linear_teacher", "quadratic_teacher"]
