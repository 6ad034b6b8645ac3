"""The data kinds: each typed spec (``data.kind``) with the builder of its `Task`.

A kind registers once, from the module of its builder::

    register_task(SinesData, sines)

The spec class is registered in `phenolab.config.DATA_KINDS` too (the built-in specs already are,
in `phenolab.config.data`), so ``data.kind: NAME`` validates into it; `task_builder` finds the
builder, importing the modules of this package (and the plugins) the first time a kind is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from phenolab.config import DATA_KINDS, ConfigError, KindSpec
from phenolab.tasks.base import Task

TaskBuilder = Callable[[Any, torch.Generator, torch.dtype], Task]

_BUILDERS: dict[str, TaskBuilder] = {}


def register_task(spec: type[KindSpec], build: TaskBuilder) -> None:
    """Register a data kind: its spec class and its builder ``(spec, generator, dtype) -> Task``."""
    DATA_KINDS.register(spec)
    kind = str(spec.model_fields["kind"].default)
    old = _BUILDERS.get(kind)
    if old is not None and old is not build and old.__qualname__ != build.__qualname__:
        raise ValueError(f"data kind {kind!r} already has a builder ({old.__module__}.{old.__qualname__})")
    _BUILDERS[kind] = build


def task_builder(kind: str) -> TaskBuilder:
    """The builder of data kind `kind` (ConfigError naming ``data.kind`` and the known kinds)."""
    if kind not in _BUILDERS:
        DATA_KINDS.kinds()  # imports every module of phenolab.tasks (and the plugins): they register
    if kind not in _BUILDERS:
        raise ConfigError([f"data.kind: must be one of {', '.join(sorted(_BUILDERS))}, got {kind!r}"])
    return _BUILDERS[kind]


def task_kinds() -> list[str]:
    """Every data kind with a builder."""
    DATA_KINDS.kinds()
    return list(_BUILDERS)
