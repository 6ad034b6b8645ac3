"""What an experiment is, and the registry of the catalog.

An experiment states its claim in one sentence, names its source (arXiv id and figure), has
`quick`, `full` and `smoke` presets (overrides applied on its config defaults; `smoke` is the
smallest run of the whole pipeline, for tests, whose verdict need not pass), plans its training
runs, and turns their stored measurements into summary numbers, a `Verdict` and figures.
"""

from __future__ import annotations

import difflib
import inspect
import traceback
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel

from phenolab.config import ConfigError, ExperimentSpec, Problem, RunSpec, Seeds, Spec, config_hash, merge, validate
from phenolab.experiments.verdict import Verdict
from phenolab.probes.registry import bind_probe_options, probe_names
from phenolab.store import Store
from phenolab.tasks.safe_expr import compile_expression


@dataclass
class RunData:
    """One finished run as the analysis sees it: its spec, status and stored records.

    A training run has its `RunSpec`; a measurement run (a `Computation`) has ``spec`` None and
    keeps what it computed in `result`. ``condition`` is the typed condition its plan gave it
    (`Planned`), set by `with_conditions`; None where the plan gave none."""

    label: str
    run_id: int
    spec: RunSpec | None
    status: str
    error: str | None
    store: Store = field(repr=False)
    _metrics: pd.DataFrame | None = field(default=None, repr=False)
    condition: Any = None

    @property
    def metrics(self) -> pd.DataFrame:
        """Wide metric table: index step, one column per metric name."""
        if self._metrics is None:
            long = self.store.metrics(self.run_id)
            self._metrics = (long.pivot_table(index="step", columns="name", values="value", aggfunc="last")
                             if len(long) else pd.DataFrame())
        return self._metrics

    def series(self, name: str) -> pd.Series:
        """One metric over steps (NaN rows dropped); an empty series if it was never recorded."""
        if name not in self.metrics.columns:
            return pd.Series(dtype=float)
        return self.metrics[name].dropna()

    def artifact(self, name: str) -> dict[str, np.ndarray]:
        return self.store.load_artifact(self.run_id, name)

    @property
    def result(self) -> dict[str, np.ndarray]:
        """What a measurement run computed (its ``result`` artifact; scalars as 0-d arrays)."""
        return self.artifact(RESULT_ARTIFACT)


RESULT_ARTIFACT = "result"

Measured = Mapping[str, "float | np.ndarray"]


@dataclass(frozen=True)
class Computation:
    """A planned measurement that is not a training run of the MLP trainer: a rank computation, a
    batch of small recovery trials trained together, a matrix-completion solve.

    ``compute(params)`` is a pure, module-level function (it is pickled to workers) of its
    `params` (seeds included) returning floats and arrays. `params` is preferably a typed params
    object, a `Spec` subclass that ``compute`` annotates as its argument (`params_from` builds one
    from an experiment config); a plain JSON-able mapping is still accepted. It is stored as a run
    of kind ``measure`` (a child of the experiment run) whose config is the function's import path
    and the params as JSON (``model_dump(mode="json")`` of a Spec), so a finished one is reused by
    config hash, as a training run is.
    """

    label: str
    compute: Callable[[Any], Measured]
    params: Spec | Mapping[str, Any] = field(default_factory=dict)

    @property
    def params_type(self) -> type[Spec] | None:
        """The params class when `params` is a typed Spec, else None."""
        return type(self.params) if isinstance(self.params, Spec) else None

    @property
    def stored_params(self) -> dict[str, Any]:
        """`params` as stored in the run's config: a Spec's JSON dump, or the mapping copied."""
        if isinstance(self.params, Spec):
            return self.params.model_dump(mode="json")
        return dict(self.params)

    @property
    def config(self) -> dict[str, Any]:
        return {"compute": f"{self.compute.__module__}:{self.compute.__qualname__}", "params": self.stored_params}

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


S = TypeVar("S", bound=Spec)


def params_from(source: BaseModel | Mapping[str, Any], cls: type[S], /, *, prefix: str = "", **extra: Any) -> S:
    """A typed params object `cls` built from an experiment config `source` in one call: each field
    of `cls` is taken from ``extra`` if given there, else from the config's ``<prefix><field>``
    (e.g. ``star_trials`` for the field ``trials`` with ``prefix="star_"``), else from the config's
    ``<field>``; a field with a default may be left out of all three.

    A required field that none of them gives is a `ConfigError` naming it (not a silent default),
    and an `extra` key that `cls` does not declare is an error too (`Spec` forbids unknown keys)."""
    data = source.model_dump() if isinstance(source, BaseModel) else dict(source)
    picked: dict[str, Any] = {}
    for name in cls.model_fields:
        if name in extra:
            continue
        if prefix and prefix + name in data:
            picked[name] = data[prefix + name]
        elif name in data:
            picked[name] = data[name]
    missing = [name for name, f in cls.model_fields.items()
               if f.is_required() and name not in picked and name not in extra]
    if missing:
        where = f"{prefix}<field> or <field>" if prefix else "<field>"
        raise ConfigError([Problem(name, f"{cls.__name__} needs {name!r}: the config has no {where} of that "
                                         f"name and the caller gave none") for name in missing])
    return cls.model_validate({**picked, **extra})


def params_class(compute: Callable[..., Any]) -> type[Spec] | None:
    """The Spec subclass that `compute` annotates its first argument with, or None."""
    try:
        hints = typing.get_type_hints(compute)
        first = next(iter(inspect.signature(compute).parameters))
    except (NameError, TypeError, ValueError, StopIteration):
        return None
    cls = hints.get(first)
    return cls if isinstance(cls, type) and issubclass(cls, Spec) else None


class MeasureSpec(Spec):
    """Config of an experiment made only of measurements (`Computation`s): its own typed fields,
    and no model, data, train or probes blocks, so an override of those is an unknown key."""

    experiment: str
    preset: str = "custom"
    seeds: Seeds = [0]


def compute_safely(compute: Callable[[Any], Measured], params: Spec | Mapping[str, Any],
                   params_type: type[Spec] | None = None) -> tuple[str, Any]:
    """``("ok", values)`` or ``("error", "Type: message")``: a computation's outcome as plain data,
    so that one that raises in a worker is stored ``failed`` while the others go on.

    Params that arrive as a mapping (the stored JSON, or a Spec's fields) are validated into the
    params class, `params_type` or else the one `compute` annotates (`params_class`), so the
    function receives its typed object; a compute without one gets the mapping. A validation
    error is an error outcome like any other."""
    try:
        cls = params_type or params_class(compute)
        if cls is not None and not isinstance(params, cls):
            params = cls.model_validate(dict(params))
        return "ok", compute(params)
    except Exception as exc:
        return "error", traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]


@dataclass(frozen=True)
class Planned:
    """One planned training run: its label, its spec and the typed condition it stands for.

    ``condition`` is any frozen (hashable) dataclass of the experiment, e.g. ``Init("small",
    gamma=2.0)``: what the analysis reads instead of parsing the label back. A `Planned` unpacks
    and indexes as the pair ``(label, spec)``, so code written for plans of tuples (the runner,
    ``dict(plan)``, ``for label, spec in plan``) takes it unchanged.
    """

    label: str
    spec: RunSpec
    condition: Any = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.label, self.spec))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Any:
        return (self.label, self.spec)[index]


PlanItem = Union[Planned, tuple[str, RunSpec]]
Plan = Callable[[Any], Sequence[PlanItem]]
Measure = Callable[[Any], list[Computation]]


def planned(item: PlanItem) -> Planned:
    """A plan item as a `Planned` (a ``(label, spec)`` tuple gets condition None)."""
    if isinstance(item, Planned):
        return item
    label, spec = item
    return Planned(label, spec)


def conditions_of(plan: Iterable[PlanItem]) -> dict[str, Any]:
    """label -> typed condition of every item of a plan."""
    return {p.label: p.condition for p in map(planned, plan)}


def with_conditions(runs: Iterable[RunData], conditions: Mapping[str, Any]) -> list[RunData]:
    """`runs` with ``condition`` set from `conditions` (label -> condition; a label not there gets None).

    The runner (`runner.judge`) already hands the analysis runs with their conditions; an analysis
    called on bare `RunData` (a test, a notebook) pairs them by label with its plan:
    ``runs = with_conditions(runs, conditions_of(plan(cfg)))``."""
    return [replace(r, condition=conditions.get(r.label)) for r in runs]


def by_condition(runs: Iterable[RunData]) -> dict[Any, RunData]:
    """condition -> run, over the runs that have one (conditions are frozen, hence hashable)."""
    return {r.condition: r for r in runs if r.condition is not None}


@dataclass(frozen=True)
class Seed:
    """The condition of a run of the default plan: the experiment's base run at one seed."""

    seed: int


def seeds_plan(cfg: ExperimentSpec) -> list[PlanItem]:
    """The default plan: the experiment's base run once per seed."""
    return [Planned(f"seed={s}", cfg.run_spec(s), Seed(s)) for s in cfg.seeds]


def no_training(cfg: ExperimentSpec) -> list[PlanItem]:
    """The plan of an experiment made only of measurements (`Experiment.measure`)."""
    return []


def no_measurements(cfg: ExperimentSpec) -> list[Computation]:
    """The default: an experiment whose runs are all training runs."""
    return []


@dataclass(frozen=True)
class Experiment:
    """A catalog entry. `plan` lists its training runs and `measure` its other computations;
    `analyze`, `verdict` and `figures` read only stored data (`RunData`, training runs first)."""

    name: str
    title: str
    source: str
    claim: str
    config: type[ExperimentSpec] | type[MeasureSpec]
    presets: Mapping[str, Mapping[str, Any]]
    analyze: Callable[[Any, list[RunData]], dict[str, Any]]
    verdict: Callable[[Any, dict[str, Any]], Verdict]
    figures: Callable[[Any, list[RunData], dict[str, Any]], dict[str, Any]]
    plan: Plan = seeds_plan
    measure: Measure = no_measurements

    def resolve(self, preset: str = "quick", overrides: Mapping[str, Any] | None = None) -> Any:
        """Defaults, then the preset, then a config file's and the command line's overrides."""
        if preset not in self.presets:
            raise ConfigError([Problem("preset", f"must be one of {', '.join(self.presets)}", preset)])
        base = self.config(experiment=self.name).model_dump(mode="json")
        data = merge(merge(base, dict(self.presets[preset])), {"preset": preset})
        data = merge(data, dict(overrides or {}))
        if data.get("experiment") != self.name:
            raise ConfigError([Problem("experiment", f"this config is for {self.name!r}", data.get("experiment"))])
        cfg = validate(self.config, data)
        if isinstance(cfg, MeasureSpec):
            return cfg
        _check_probe_names(cfg)
        _check_probe_options(cfg)
        if cfg.data.kind == "expression":
            compile_expression(cfg.data.expr)  # a ConfigError naming data.expr, before anything runs
        return cfg


def _check_probe_names(cfg: ExperimentSpec) -> None:
    known = probe_names()
    bad = [Problem(f"probes[{i}].name", f"unknown probe {p.name!r} (registered: {', '.join(known)})")
           for i, p in enumerate(cfg.probes) if p.name not in known]
    if bad:
        raise ConfigError(bad)


def _check_probe_options(cfg: ExperimentSpec) -> None:
    """Every probe's options bound to its function's signature now, not at step 0 after runs exist."""
    bad: list[Problem] = []
    for i, probe in enumerate(cfg.probes):
        try:
            bind_probe_options(probe.name, probe.options)
        except ConfigError as err:
            bad.extend(replace(item, path=f"probes[{i}].{item.path}") for item in err.items)
    if bad:
        raise ConfigError(bad)


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    from phenolab.plugins import already_registered, note_registered

    if experiment.name in _REGISTRY:
        raise already_registered("experiment", experiment.name, _REGISTRY[experiment.name].analyze.__module__,
                                 experiment.analyze.__module__)
    for needed in ("quick", "full", "smoke"):
        if needed not in experiment.presets:
            raise ValueError(f"experiment {experiment.name!r} needs a {needed!r} preset")
    _REGISTRY[experiment.name] = experiment
    note_registered("experiment", experiment.name, experiment.analyze.__module__)
    return experiment


def get_experiment(name: str) -> Experiment:
    """The catalog entry `name`; an unknown name raises ConfigError with the closest names."""
    _load_catalog()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError([Problem("experiment",
                                   f"unknown experiment {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})")])
    return _REGISTRY[name]


def experiments() -> list[Experiment]:
    """Every registered experiment, in catalog order."""
    _load_catalog()
    return list(_REGISTRY.values())


def _load_catalog() -> None:
    from phenolab.experiments import catalog  # noqa: F401  (importing registers the entries)
    from phenolab.plugins import load_plugins

    load_plugins()  # then the experiments of plugins (entry points, $PHENOLAB_PLUGINS, --plugin)
