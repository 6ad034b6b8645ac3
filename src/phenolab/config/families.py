"""`Spec`, the base of every spec, and `SpecFamily`: the registered kinds of one config block
(``model``, ``data``, ``train.loss``), a discriminated union that grows by registration."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

from phenolab.config.errors import ConfigError, _short


class Spec(BaseModel):
    """Base of every spec: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KindSpec(Spec):
    """A spec chosen by its ``kind`` within a family (a model kind, a data kind)."""

    kind: str


K = TypeVar("K", bound=type[KindSpec])


class SpecFamily:
    """The registered kinds of one config block (``model``, ``data``): a discriminated union that
    grows by registration instead of a hand-kept list.

    ``Annotated[KindSpec, family]`` validates a mapping by its ``kind`` (``default`` when absent)
    into that kind's spec class. Kinds defined outside this module register from their own module
    (`register`); modules of ``package`` are imported the first time a kind is not found, and the
    plugin loader (`phenolab.plugins`) the same way, so a new kind needs no line here. The import
    is by name, at validation time: this module still imports nothing of phenolab.
    """

    def __init__(self, block: str, package: str, default: str | None = None, shorthand: bool = False) -> None:
        self.block, self.package, self.default, self.shorthand = block, package, default, shorthand
        self._kinds: dict[str, type[KindSpec]] = {}
        self._loaded = False

    def register(self, cls: K) -> K:
        """Register spec class `cls` under its ``kind`` default (usable as a class decorator)."""
        kind = cls.model_fields["kind"].default  # type: ignore[call-overload]
        if not isinstance(kind, str):
            raise TypeError(f"{cls.__name__}: a {self.block} spec needs a default kind, e.g. kind: Literal['x'] = 'x'")
        old = self._kinds.get(kind)
        if old is not None and old is not cls and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"{self.block} kind {kind!r} is already registered ({old.__module__}.{old.__qualname__})")
        self._kinds[kind] = cls
        return cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        try:
            plugins = importlib.import_module("phenolab.plugins")
        except ImportError:
            return
        plugins.load_plugins()

    def get(self, kind: str) -> type[KindSpec]:
        """The spec class of `kind`; ConfigError naming ``BLOCK.kind`` and the known kinds."""
        if kind not in self._kinds:
            self._load()
        if kind not in self._kinds:
            raise ConfigError([f"{self.block}.kind: must be one of {', '.join(self.kinds())}, got {kind!r}"])
        return self._kinds[kind]

    def kinds(self) -> list[str]:
        self._load()
        return list(self._kinds)

    def classes(self) -> list[type[KindSpec]]:
        self._load()
        return list(self._kinds.values())

    def _validate(self, value: Any) -> KindSpec:
        if isinstance(value, KindSpec) and self._kinds.get(value.kind) is type(value):
            return value
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if self.shorthand and isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping of {self.block} settings with a kind, got {_short(value)}")
        kind = value.get("kind", self.default)
        if kind is None:
            raise ValueError(f"kind: required, one of {', '.join(self.kinds())}")
        if not isinstance(kind, str) or kind not in self._kinds and kind not in self.kinds():
            raise ValueError(f"kind: must be one of {', '.join(self.kinds())}, got {kind!r}")
        return self._kinds[kind].model_validate(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def dump(value: Any, info: core_schema.SerializationInfo) -> Any:
            if not isinstance(value, BaseModel):
                return value
            if self.shorthand and value == type(value)():  # default options: the bare kind name
                return value.kind  # type: ignore[attr-defined]
            return value.model_dump(mode=info.mode)

        return core_schema.no_info_plain_validator_function(
            self._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(dump, info_arg=True, when_used="always"))


def family_of(annotation: Any, metadata: Any = ()) -> SpecFamily | None:
    """The `SpecFamily` of a field: its annotation ``Annotated[KindSpec, family]`` (through Optional),
    or a pydantic field's `metadata` (where pydantic moves the ``Annotated`` extras); else None."""
    import typing

    for meta in metadata:
        if isinstance(meta, SpecFamily):
            return meta
    for arg in (annotation, *typing.get_args(annotation)):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, SpecFamily):
                return meta
    return None


MODEL_KINDS = SpecFamily("model", "phenolab.models", default="mlp")
OBJECTIVE_KINDS = SpecFamily("train.loss", "phenolab.objectives", shorthand=True)
DATA_KINDS = SpecFamily("data", "phenolab.tasks")
ModelSpec = Annotated[KindSpec, MODEL_KINDS]
"""A model spec of any registered kind (`MLPSpec` by default; see `MODEL_KINDS`)."""
DataSpec = Annotated[KindSpec, DATA_KINDS]
"""A data spec of any registered kind (see `DATA_KINDS`)."""
ObjectiveSpec = Annotated[KindSpec, OBJECTIVE_KINDS]
"""``train.loss``: an objective's name (``mse``) or a mapping with its options
(``{kind: token_cross_entropy, last_only: true}``); `phenolab.objectives` implements them."""
