"""The model kinds: each typed spec (``model.kind``) with its builder and what it declares.

A kind registers once, from its own module::

    register_model(MLPSpec, build_mlp, stackable=True)

`build_model` builds any registered kind; the spec class is also registered in
`phenolab.config.MODEL_KINDS`, so that a config with ``model.kind: NAME`` validates into it.
``stackable`` says that the ensemble trainer (`phenolab.train.ensemble`) can stack members of
this kind on a leading axis; ``engine="numpy"`` marks a system that is not a torch module
(`phenolab.train.engines`); every other kind trains with the plain loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from phenolab.config import MODEL_KINDS, ConfigError, KindSpec

Builder = Callable[[Any, int, int, torch.Generator, torch.dtype], nn.Module]


@dataclass(frozen=True)
class ModelKind:
    """A registered model kind: its spec class, its builder ``(spec, input_dim, output_dim,
    generator, dtype) -> nn.Module``, and whether the ensemble trainer can stack it."""

    spec: type[KindSpec]
    build: Builder
    stackable: bool = False
    engine: str = "torch"

    @property
    def name(self) -> str:
        return str(self.spec.model_fields["kind"].default)


_KINDS: dict[str, ModelKind] = {}


def register_model(spec: type[KindSpec], build: Builder, *, stackable: bool = False,
                   engine: str = "torch") -> ModelKind:
    """Register a model kind (its spec class in `MODEL_KINDS` too); a second kind of one name is an error.

    ``engine``: ``torch`` for ``nn.Module`` builders (the plain loop, or the ensemble when
    ``stackable``), ``numpy`` for systems trained by `phenolab.train.engines.train_numpy`."""
    MODEL_KINDS.register(spec)
    kind = ModelKind(spec, build, stackable, engine)
    old = _KINDS.get(kind.name)
    if old is not None and old.build is not build and old.build.__qualname__ != build.__qualname__:
        raise ValueError(f"model kind {kind.name!r} is already registered ({old.build.__module__})")
    _KINDS[kind.name] = kind
    return kind


def model_kind(kind: str) -> ModelKind:
    """The registered kind `kind` (ConfigError naming ``model.kind`` and the known kinds otherwise)."""
    if kind not in _KINDS:
        MODEL_KINDS.kinds()  # imports every module of phenolab.models (and the plugins): they register
    if kind not in _KINDS:
        raise ConfigError([f"model.kind: must be one of {', '.join(sorted(_KINDS))}, got {kind!r}"])
    return _KINDS[kind]


def model_kinds() -> list[ModelKind]:
    MODEL_KINDS.kinds()
    return list(_KINDS.values())


def build_model(spec: KindSpec, input_dim: int, output_dim: int, generator: torch.Generator,
                dtype: torch.dtype = torch.float32) -> nn.Module:
    """The network of `spec` (any registered kind) for a task with `input_dim` inputs and
    `output_dim` outputs, initialized from `generator`."""
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    return model_kind(spec.kind).build(spec, input_dim, output_dim, generator, dtype)


def parameter_count(model: nn.Module) -> int:
    """Number of scalar parameters of a built model (trained or frozen)."""
    return sum(p.numel() for p in model.parameters())
