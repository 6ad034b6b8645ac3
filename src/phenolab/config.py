"""Typed specifications of a run, `key=value` overrides, canonical JSON and the config hash.

Every spec is a frozen pydantic v2 model that forbids unknown keys. Bad input raises
`ConfigError`, whose message names the dotted path, the value and what is allowed, e.g.
``model.width: must be > 0, got -3``.

Initialization convention (the group's material mixes variance and std, see
docs/specs/README.md): phenolab always speaks of the **standard deviation**. ``init.gamma = g``
means std = m^-g with m the first hidden width (the group's course code, `normal_(0, 1/m**g)`);
in the phase-diagram coordinates of Luo et al. (variance 1/m^gamma) that is gamma = 2 g.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import importlib
import json
import math
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, ValidationError, model_validator
from pydantic_core import core_schema


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing.MISSING  # `Problem.value` when no single input value is to blame
_FIELD_AT_START = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (`path`, a dotted config path such as ``model.width``
    or ``probes[0].options.peaks``, or a label such as ``config file x.yaml``), why (`reason`), the
    rejected input `value` when one value is to blame, and the `allowed` names when the input
    was a name (an unknown key). ``str()`` is the one-line message: ``path: reason, got value``."""

    path: str
    reason: str
    value: Any = MISSING
    allowed: tuple[str, ...] | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.reason}" if self.path else self.reason
        if self.value is not MISSING:
            text += f", got {_short(self.value)}"
        if self.allowed:
            text += f" (allowed: {', '.join(self.allowed)})"
        return text

    @classmethod
    def from_text(cls, text: str) -> Problem:
        """A problem given as its one-line text (older callers): ``path: reason`` when the text
        starts with a dotted path, else a problem without a path."""
        match = _FIELD_AT_START.match(text)
        return cls(match.group(1), match.group(2)) if match else cls("", text)


class ConfigError(ValueError):
    """Bad configuration input. `items` are the `Problem`s; `problems` their one-line texts
    (``path: reason, got value``), and `str(err)` those texts joined by ``; ``."""

    def __init__(self, problems: Iterable[Problem | str] | Problem | str):
        if isinstance(problems, (str, Problem)):
            problems = [problems]
        self.items: list[Problem] = [p if isinstance(p, Problem) else Problem.from_text(str(p)) for p in problems]
        self.problems: list[str] = [str(p) for p in self.items]
        super().__init__("; ".join(self.problems))


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
        kind = cls.model_fields["kind"].default
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


PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Seeds = Annotated[list[int], Field(min_length=1)]

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "sin", "xtanh", "x2tanh", "linear", "quadratic"]
PARAMETRIZED_ACTIVATIONS = ("quadratic",)  # activations that take model.activation_param
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Parametrization = Literal["standard", "ntk", "mean_field", "mup"]


# ----------------------------------------------------------------------------------- model
class InitSpec(Spec):
    """Initialization of the weights, as standard deviations (never variances).

    Exactly one of the following decides the std of each layer's raw weights:
    - ``std``: one value for every layer, or one value per layer (hidden layers, then output);
    - ``gamma``: std = m^-gamma with m the first hidden width; one value or one per layer;
    - neither: the parametrization's default (standard: 1/sqrt(fan_in); NTK and mean-field: 1).
    ``bias_std`` sets the biases' std (default: the same std as the layer's weights);
    ``antisymmetric`` duplicates the hidden units of a two-layer net with negated output weights
    so that the network output is exactly 0 at initialization (ASI, docs/specs/README.md).
    """

    std: float | list[float] | None = None
    gamma: float | list[float] | None = None
    bias_std: NonNegFloat | None = None
    antisymmetric: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> InitSpec:
        if self.std is not None and self.gamma is not None:
            raise ValueError("give either std or gamma, not both")
        stds = self.std if isinstance(self.std, list) else [self.std]
        if any(s is not None and not 0 < s < math.inf for s in stds):
            raise ValueError(f"std must be finite and > 0, got {self.std}")
        gammas = self.gamma if isinstance(self.gamma, list) else [self.gamma]
        if any(g is not None and not math.isfinite(g) for g in gammas):
            raise ValueError(f"gamma must be finite, got {self.gamma}")
        return self


@MODEL_KINDS.register
class MLPSpec(KindSpec):
    """A fully connected network: ``depth`` hidden layers of ``width`` units (or explicit ``widths``).

    A two-layer network, f(x) = sum_k a_k sigma(w_k . x + b_k), is depth 1. ``input_dim`` and
    ``output_dim`` default to the task's. ``output_scale`` multiplies the output (1/alpha in
    Luo et al.'s phase diagram, alpha in Chizat's lazy training).
    ``parametrization`` is one of standard, ntk, mean_field, mup (the per-layer table is in
    `phenolab.models.parametrization`). ``base_width`` (muP only, default None = 1): the width
    at which muP coincides with the standard parametrization; every hidden width enters muP's
    multipliers, initialization and per-layer learning rates as m / base_width (the mup
    package's base shape). It is left out of the canonical JSON while None, so configs without
    it keep their hash.

    Options of a committee machine (Kumar et al. 2023, arXiv:2310.06110: f(x) = (alpha/N)
    sum_i phi(w_i . x), readouts fixed to 1, trained as the centred predictor), each left out of
    the canonical JSON at its default so that older configs keep their hash:

    - ``activation_param``: the parameter of a parametrized activation (``quadratic``:
      sigma(h) = h + (c/2) h^2 with c = activation_param; None = its default, c = 1);
    - ``fixed_readout``: every output weight equals this value and is not trained (None, the
      default: the output layer is initialized and trained as usual; an output bias, if any, trains);
    - ``centered``: the network outputs f(x; theta) - f(x; theta_0), theta_0 its own initial
      parameters (kept as buffers), so f = 0 at initialization and the NTK is unchanged
      (Chizat, Oyallon & Bach 2019's centring; Kumar et al.'s centred predictor, App. 8.1).
    """

    kind: Literal["mlp"] = "mlp"
    width: PosInt | None = None  # default 100
    depth: PosInt | None = None  # default 1
    widths: list[PosInt] | None = None
    activation: Activation = "tanh"
    bias: bool = True
    output_bias: bool | None = None  # None = same as bias
    parametrization: Parametrization = "standard"
    init: InitSpec = InitSpec()
    output_scale: PosFloat = 1.0
    input_dim: PosInt | None = None
    output_dim: PosInt | None = None
    base_width: PosInt | None = Field(default=None, exclude_if=lambda v: v is None)
    activation_param: FiniteFloat | None = Field(default=None, exclude_if=lambda v: v is None)
    fixed_readout: FiniteFloat | None = Field(default=None, exclude_if=lambda v: v is None)
    centered: bool = Field(default=False, exclude_if=lambda v: not v)

    @property
    def hidden_widths(self) -> list[int]:
        if self.widths is not None:
            return list(self.widths)
        return [self.width or 100] * (self.depth or 1)

    @model_validator(mode="after")
    def _per_layer_lengths(self) -> MLPSpec:
        if self.widths is not None and (self.width is not None or self.depth is not None):
            raise ValueError(f"give either widths (now {self.widths}) or width/depth, not both; "
                             "e.g. model.widths=[200,200]")
        if not self.widths and self.widths is not None:
            raise ValueError("widths must list at least one hidden width")
        if self.base_width is not None and self.parametrization != "mup":
            raise ValueError(f"base_width is only used by parametrization=mup, got base_width={self.base_width} "
                             f"with parametrization={self.parametrization!r}")
        if self.activation_param is not None and self.activation not in PARAMETRIZED_ACTIVATIONS:
            raise ValueError(f"activation_param is only used by a parametrized activation "
                             f"({', '.join(PARAMETRIZED_ACTIVATIONS)}), got activation_param={self.activation_param} "
                             f"with activation={self.activation!r}")
        if self.fixed_readout is not None and self.init.antisymmetric:
            raise ValueError(f"fixed_readout sets every output weight to one value, init.antisymmetric negates "
                             f"half of them; give one of them, got fixed_readout={self.fixed_readout} with "
                             "init.antisymmetric=true")
        if self.init.antisymmetric and (len(self.hidden_widths) != 1 or self.hidden_widths[0] % 2):
            raise ValueError(f"init.antisymmetric needs a two-layer net (depth 1) of even width, "
                             f"got hidden widths {self.hidden_widths}")
        n_layers = len(self.hidden_widths) + 1
        for name in ("std", "gamma"):
            value = getattr(self.init, name)
            if isinstance(value, list) and len(value) != n_layers:
                raise ValueError(
                    f"init.{name} has {len(value)} values but the network has {n_layers} layers "
                    f"(hidden widths {self.hidden_widths} + output); give one value or {n_layers}"
                )
        return self


# ------------------------------------------------------------------------------------ data
class _DataBase(KindSpec):
    n_test: Annotated[int, Field(ge=0)] = 0
    noise: NonNegFloat = 0.0
    seed: int | None = None  # data randomness; None = the run's seed


@DATA_KINDS.register
class SinesData(_DataBase):
    """1-D target y = sum_j A_j sin(omega_j x) on an interval (the F-Principle target by default)."""

    kind: Literal["sines"] = "sines"
    frequencies: list[float] = [1.0, 3.0, 5.0]
    amplitudes: list[float] = [1.0, 2.0, 3.0]
    interval: tuple[float, float] = (-5.0, 5.0)
    n_train: PosInt = 101
    sampling: Literal["grid", "uniform"] = "grid"

    @model_validator(mode="after")
    def _check(self) -> SinesData:
        if len(self.frequencies) != len(self.amplitudes):
            raise ValueError(
                f"frequencies ({len(self.frequencies)}) and amplitudes ({len(self.amplitudes)}) "
                "must have the same length"
            )
        if not self.interval[0] < self.interval[1]:
            raise ValueError(f"interval must be (low, high) with low < high, got {self.interval}")
        return self


@DATA_KINDS.register
class ExpressionData(_DataBase):
    """1-D target given as a numpy expression in x, e.g. ``sin(x) + 0.5*abs(x)``."""

    kind: Literal["expression"] = "expression"
    expr: str
    interval: tuple[float, float] = (-1.0, 1.0)
    n_train: PosInt = 101
    sampling: Literal["grid", "uniform"] = "grid"

    @model_validator(mode="after")
    def _check(self) -> ExpressionData:
        if not self.interval[0] < self.interval[1]:
            raise ValueError(f"interval must be (low, high) with low < high, got {self.interval}")
        return self


@DATA_KINDS.register
class TeacherData(_DataBase):
    """d-D target: a random two-layer teacher network y = sum_k a_k sigma(w_k . x), x ~ U([-1,1]^d)."""

    kind: Literal["teacher"] = "teacher"
    input_dim: PosInt = 5
    width: PosInt = 4
    activation: Activation = "tanh"
    n_train: PosInt = 500


@DATA_KINDS.register
class RidgeData(_DataBase):
    """d-D target y = sum_j A_j sin(omega_j u_j . x), random unit directions u_j, x ~ U([-1,1]^d)."""

    kind: Literal["ridge"] = "ridge"
    input_dim: PosInt = 5
    frequencies: list[float] = [2.0, 8.0]
    amplitudes: list[float] = [1.0, 0.5]
    n_train: PosInt = 2000

    @model_validator(mode="after")
    def _check(self) -> RidgeData:
        if len(self.frequencies) != len(self.amplitudes):
            raise ValueError(
                f"frequencies ({len(self.frequencies)}) and amplitudes ({len(self.amplitudes)}) "
                "must have the same length"
            )
        return self


@DATA_KINDS.register
class CoordinateSinesData(_DataBase):
    """d-D target y = sum_k A sin(omega x_k + phi) over the coordinates, x ~ U([low, high]^d)."""

    kind: Literal["coordinate_sines"] = "coordinate_sines"
    input_dim: PosInt = 5
    amplitude: float = 3.5
    frequency: float = 5.0
    phase: float = 1.0
    interval: tuple[float, float] = (-4.0, 2.0)
    n_train: PosInt = 80

    @model_validator(mode="after")
    def _check(self) -> CoordinateSinesData:
        if not self.interval[0] < self.interval[1]:
            raise ValueError(f"interval must be (low, high) with low < high, got {self.interval}")
        return self


@DATA_KINDS.register
class ProductData(_DataBase):
    """Target y = x_1 x_2 on 2-D inputs: n points evenly spaced on the unit circle,
    x = (cos t, sin t), or x ~ N(0, I_2) (Jacot et al.'s NTK experiments, arXiv:1806.07572)."""

    kind: Literal["product"] = "product"
    sampling: Literal["circle", "gaussian"] = "circle"
    n_train: PosInt = 16


@DATA_KINDS.register
class GaussianMixtureData(_DataBase):
    """k classes, one Gaussian cluster each: centres ~ N(0, spread^2 I_d), points ~ N(centre, I_d),
    n_train points in total, labels balanced (the Hessian setting of docs/specs/hessian-outliers.md)."""

    kind: Literal["gaussian_mixture"] = "gaussian_mixture"
    input_dim: PosInt = 10
    classes: Annotated[int, Field(ge=2)] = 4
    spread: PosFloat = 1.5
    n_train: PosInt = 1000
    one_hot: bool = False  # integer labels (for cross-entropy); one-hot vectors for MSE


@DATA_KINDS.register
class LinearTeacherData(_DataBase):
    """x ~ N(0, I_d), y = beta . x with beta ~ N(0, scale^2 / d I) drawn once (docs/specs/sharpness-width.md)."""

    kind: Literal["linear_teacher"] = "linear_teacher"
    input_dim: PosInt = 20
    scale: PosFloat = 6.0
    n_train: PosInt = 200


@DATA_KINDS.register
class DigitsData(_DataBase):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), pixels scaled to [0, 1]."""

    kind: Literal["digits"] = "digits"
    n_train: PosInt = 1000
    one_hot: bool = True  # targets as one-hot vectors (for MSE); else integer labels (for CE)
    noise: Literal[0.0] = 0.0  # real labels: no added noise

    @model_validator(mode="after")
    def _check(self) -> DigitsData:
        if self.n_train + self.n_test > 1797:
            raise ValueError(f"n_train + n_test must be <= 1797 (the digits data set), got "
                             f"{self.n_train} + {self.n_test}")
        return self


@DATA_KINDS.register
class QuadraticTeacherData(_DataBase):
    """x ~ N(0, I_d / d), y = (1/2) (beta . x)^2 with beta ~ N(0, I_d) drawn once (Kumar et al. 2023,
    arXiv:2310.06110 section 5; sizes in docs/specs/lazy-rich.md). The task's ``info["beta"]``
    holds beta (d, 1), and it can draw fresh inputs (``Task.sample``) for Monte-Carlo test losses."""

    kind: Literal["quadratic_teacher"] = "quadratic_teacher"
    input_dim: PosInt = 50
    n_train: PosInt = 200


# ----------------------------------------------------------------------------------- train
@OBJECTIVE_KINDS.register
class MSESpec(KindSpec):
    """``mse``: 1/(n k) sum (f - y)^2 over samples and outputs, no 1/2 (`phenolab.objectives`)."""

    kind: Literal["mse"] = "mse"


@OBJECTIVE_KINDS.register
class HalfMSESpec(KindSpec):
    """``half_mse``: 1/(2 n) sum_i ||f_i - y_i||^2, the theory papers' convention."""

    kind: Literal["half_mse"] = "half_mse"


@OBJECTIVE_KINDS.register
class CrossEntropySpec(KindSpec):
    """``cross_entropy``: mean softmax cross-entropy, classes on the output's last axis."""

    kind: Literal["cross_entropy"] = "cross_entropy"


@OBJECTIVE_KINDS.register
class TokenCrossEntropySpec(KindSpec):
    """``token_cross_entropy``: logits (n, T, V) against tokens (n, T); targets equal to
    ``ignore_index`` do not count; ``last_only`` scores the last position only."""

    kind: Literal["token_cross_entropy"] = "token_cross_entropy"
    ignore_index: int = -100
    last_only: bool = False


class TrainSpec(Spec):
    """How to train: optimizer, loss, steps, probe schedule, divergence and time limits.

    ``weight_decay``: decoupled (AdamW) with adam, added to the gradient (lambda theta) with sgd
    and gd. ``warmup``: steps of linear warm-up of the learning rate from lr/warmup to lr;
    ``schedule``: ``constant`` after it, or ``cosine`` decay to 0 at the last step.
    ``clip_norm``: each run's gradient is rescaled to this Euclidean norm when it is larger
    (torch's ``clip_grad_norm_``). ``device``: ``cpu``, ``cuda``, or ``auto`` (cuda when there
    is one); probes always evaluate on the CPU. ``engine``: who trains the run
    (`phenolab.train.engines`): ``auto`` picks from the config alone, so that one config hash
    always has one engine: ``ensemble`` for a stackable model kind with an objective the
    stacked paths compute, else ``plain``.
    """

    optimizer: Literal["gd", "sgd", "adam"] = "adam"
    lr: PosFloat = 1e-3
    steps: Annotated[int, Field(ge=0)] = 1000  # 0: only the probes at initialization
    batch_size: PosInt | None = None  # None = full batch
    batch_seed: int | None = None  # seed of the minibatch order; None = the run's seed (per-run orders)
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    loss: ObjectiveSpec = MSESpec()
    probe_every: PosInt = 10
    max_loss: PosFloat = 1e8  # a loss above this (or NaN/inf) stops the run as `diverged`
    time_limit: PosFloat | None = None  # seconds; the run stops as `failed` with the reason
    dtype: Literal["float32", "float64"] = "float32"
    stop_ratio: PosFloat | None = None  # stop (done) once loss <= stop_ratio * initial loss
    restart_on_jump: PosFloat | None = None  # loss up by more than this fraction in one step: restart from init at lr/2
    max_restarts: Annotated[int, Field(ge=0)] = 10
    # Options of every torch trainer, each left out of the canonical JSON at its default so that
    # older configs keep their hash (`phenolab.train.schedule`, `phenolab.train.engines`).
    weight_decay: NonNegFloat = Field(default=0.0, exclude_if=lambda v: v == 0)
    warmup: Annotated[int, Field(ge=0)] = Field(default=0, exclude_if=lambda v: v == 0)
    schedule: Literal["constant", "cosine"] = Field(default="constant", exclude_if=lambda v: v == "constant")
    clip_norm: PosFloat | None = Field(default=None, exclude_if=lambda v: v is None)
    device: Literal["cpu", "cuda", "auto"] = Field(default="cpu", exclude_if=lambda v: v == "cpu")
    engine: Literal["auto", "plain", "ensemble"] = Field(default="auto", exclude_if=lambda v: v == "auto")

    @model_validator(mode="after")
    def _optimizer_options(self) -> TrainSpec:
        if self.optimizer == "gd" and self.batch_size is not None:
            raise ValueError(f"train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for "
                             f"minibatches, got batch_size={self.batch_size}")
        if self.momentum > 0 and self.optimizer == "adam":
            raise ValueError(f"train.momentum: only used by optimizer=sgd or gd, got momentum={self.momentum} "
                             f"with optimizer={self.optimizer!r}")
        return self


class ProbeSpec(Spec):
    """A registered probe and its options; ``every`` overrides train.probe_every for this probe;
    ``start``: the first step at which it runs on that schedule (default 0, the initialization;
    e.g. 1 for a costly probe wanted only after training). Every probe runs after the last step."""

    name: str
    every: PosInt | None = None
    start: Annotated[int, Field(ge=0)] = Field(default=0, exclude_if=lambda v: v == 0)
    options: dict[str, Any] = {}


# ---------------------------------------------------------------------------------- run(s)
class RunSpec(Spec):
    """One training run: everything that decides its numbers."""

    model: ModelSpec = MLPSpec()
    data: DataSpec = SinesData()
    train: TrainSpec = TrainSpec()
    probes: list[ProbeSpec] = []
    seed: int = 0


class ExperimentSpec(Spec):
    """An experiment: a base run, the seeds to repeat it over, and the verdict's thresholds.

    Experiments subclass this to type their own ``check`` block.
    """

    experiment: str
    preset: str = "custom"
    seeds: Seeds = [0]
    model: ModelSpec = MLPSpec()
    data: DataSpec = SinesData()
    train: TrainSpec = TrainSpec()
    probes: list[ProbeSpec] = []
    check: dict[str, Any] = {}

    def require_probes(self, *names: str) -> None:
        """Raise (inside a validator) if the analysis needs a probe that the config dropped."""
        have = {p.name for p in self.probes}
        missing = [n for n in names if n not in have]
        if missing:
            raise ValueError(f"probes: {self.experiment} needs the probe(s) {', '.join(missing)}; got {sorted(have)}")

    def run_spec(self, seed: int, **changes: Any) -> RunSpec:
        """The training run of this experiment for one seed; `changes` are dotted overrides."""
        base = {
            "model": self.model.model_dump(mode="json"),
            "data": self.data.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "probes": [p.model_dump(mode="json") for p in self.probes],
            "seed": seed,
        }
        for key, value in changes.items():
            _set_path(base, key.split("."), value)
        return validate(RunSpec, base)


# ------------------------------------------------------------------------------- overrides
def parse_value(text: str) -> Any:
    """A command-line value as YAML scalar or flow list (`3`, `1e-3`, `true`, `[1, 2]`, `relu`)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 as a string
            return float(value) if value.lower() not in ("nan", "inf", "-inf") else value
        except ValueError:
            return value
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["model.width=200", "train.lr=1e-3"]`` -> nested dict ``{"model": {"width": 200}, ...}``."""
    nested: dict[str, Any] = {}
    problems = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(Problem(repr(item), "an override is key=value with a dotted key, e.g. model.width=200"))
            continue
        if key.startswith("+"):
            problems.append(Problem(key, "adding keys with '+' is not supported; every key must exist"))
            continue
        _set_path(nested, key.split("."), parse_value(raw))
    if problems:
        raise ConfigError(problems)
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins. Changing `data.kind` drops the other kind's keys."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if "kind" in value and value["kind"] != old.get("kind"):
                out[key] = dict(value)
            else:
                out[key] = merge(old, value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (errors name the file)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError([Problem(f"config file {path}", "not found")]) from None
    except yaml.YAMLError as err:
        raise ConfigError([Problem(f"config file {path}", f"not valid YAML ({err})".replace("\n", " "))]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(f"config file {path}", f"must hold a mapping of keys, got {type(data).__name__}")])
    return data


def _set_path(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = tree.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            tree[part] = nxt
        tree = nxt
    tree[parts[-1]] = value


# ------------------------------------------------------------------------------ validation
def validate(cls: type[Spec], data: dict[str, Any]) -> Any:
    """Validate `data` against `cls`, turning pydantic's errors into a one-line-each ConfigError."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(cls, data, err)) from None



def _explain(cls: type[Spec], data: dict[str, Any], err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        loc = [p for p in loc if not p.startswith(("function-", "union["))]
        path = ".".join(loc) if loc else "(config)"
        kind, msg = e["type"], e["msg"]
        got = e.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(cls, data, loc[:-1])
            hint = difflib.get_close_matches(loc[-1], allowed, n=1)
            reason = "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else "")
            problems.append(Problem(path, reason, allowed=tuple(sorted(allowed)) or None))
            continue
        if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
                  "less_than_equal": "<="}[kind]
            bound = next(iter(e.get("ctx", {}).values()), "?")
            problems.append(Problem(path, f"must be {op} {bound}", got))
            continue
        if kind == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            problems.append(Problem(path, f"must be one of {expected}", got))
            continue
        if kind == "value_error":
            msg = msg.removeprefix("Value error, ")
            if loc and msg.startswith("kind: "):  # a family's kind check (`SpecFamily`)
                problems.append(Problem(f"{path}.kind", msg.removeprefix("kind: ")))
                continue
            named = _named_field(loc, msg)
            if named is not None:  # a model-level check whose message starts with the dotted field
                problems.append(named)
                continue
            if "got" in msg or isinstance(got, dict):  # the message says it, or the input is a whole block
                problems.append(Problem(path, msg))
                continue
        elif kind == "missing":
            problems.append(Problem(path, "required but missing"))
            continue
        problems.append(Problem(path, msg[0].lower() + msg[1:], got))
    return problems


def _named_field(loc: list[str], msg: str) -> Problem | None:
    """The problem of a model-level check whose message starts with the field it blames, written
    from the block's owner: ``train.batch_size: ...`` (a validator of `TrainSpec`). At the top
    (empty `loc`) the path is the message's; in a nested block (``loc`` = ``["train"]``, or
    ``["toy", "train"]``) the message's first part names that block, so the path is `loc` and
    the rest of the message's path (never ``train.train.batch_size``)."""
    match = re.match(r"^([a-z_][a-z_.0-9]*): (.*)$", msg, re.DOTALL)
    if match is None:
        return None
    head = match.group(1).split(".")
    if not loc:
        return Problem(".".join(head), match.group(2))
    if len(head) > 1 and head[0] == loc[-1]:
        return Problem(".".join(loc + head[1:]), match.group(2))
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(cls: type[BaseModel], data: dict[str, Any], loc: list[str]) -> list[str]:
    """The field names allowed at dotted location `loc` under `cls` (best effort)."""
    model: Any = cls
    node: Any = data
    for part in loc:
        if isinstance(node, dict):
            node = node.get(part)
        if part.isdigit() or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation, node, field.metadata)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any, node: Any, metadata: Any = ()) -> Any:
    import typing

    family = family_of(annotation, metadata)
    if family is not None:
        kind = node.get("kind", family.default) if isinstance(node, dict) else family.default
        try:
            return family.get(kind) if isinstance(kind, str) else None
        except ConfigError:
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    models = []
    for a in args:
        sub = _model_of(a, node)
        if sub is not None:
            models.append(sub)
    if len(models) > 1 and isinstance(node, dict):  # discriminated union: pick by kind
        for m in models:
            kind_field = m.model_fields.get("kind")
            if kind_field is not None and kind_field.default == node.get("kind"):
                return m
    return models[0] if models else None


# ---------------------------------------------------------------------- canonical JSON, hash
def canonical_json(spec: BaseModel | dict[str, Any]) -> str:
    """Sorted-key, compact JSON of the resolved config; floats as Python's shortest repr."""
    data = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else spec
    return json.dumps(_normalize(data), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(spec: BaseModel | dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of `canonical_json(spec)`."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value
