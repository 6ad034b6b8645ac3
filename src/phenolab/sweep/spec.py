"""Sweep specs: axes over config paths, their Cartesian product, validated before anything runs.

An axis is ``PATH=VALUES`` (what a user types after ``--axis``, and the same strings in a YAML
sweep file). PATH is a dotted config path (``model.init.gamma``, ``train.lr``, ``seeds``) and
VALUES is one of

- a list ``125,250,500`` (items parsed like ``key=value`` overrides; split on top-level commas
  only, so ``[100,100],[200,200]`` is two list values);
- a linear range ``a:b:n``: n points from a to b inclusive, like ``numpy.linspace``;
- a log range ``a:b:n:log``: n geometric points from a to b (a, b > 0).

Range points stay integers when a and b are integers and every point is integral; otherwise they
are floats rounded to 12 significant digits (``0.3``, not ``0.30000000000000004``).

A YAML sweep file holds the fields of `SweepSpec`; ``axes`` may be a list of axis strings or a
mapping from path to a list of values or to a VALUES string::

    experiment: f-principle
    preset: quick
    name: gamma-lr
    base: {train: {steps: 500}}       # or dotted keys, or a list of key=value strings
    axes:
      model.init.gamma: 0.5:2:4
      train.lr: [1.0e-4, 1.0e-3]
    seeds: 2                          # replaces the experiment's seeds: [0, 1]

`expand` turns a spec into its points (first axis slowest), each resolved and validated through
the experiment's own config, so that every mistake is reported before the first run starts.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import re
import types
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping

from pydantic import BaseModel, field_validator, model_validator

from phenolab.config import (
    MISSING,
    ConfigError,
    ExperimentSpec,
    Problem,
    Spec,
    config_hash,
    family_of,
    load_yaml,
    merge,
    parse_overrides,
    parse_value,
    validate,
)
from phenolab.experiments.base import Experiment, get_experiment
from phenolab.sweep.axes import (
    Axis,
    _axis_from_entry,
    _error,
    _fix_numbers,
    parse_axis,
)

DEFAULT_MAX_POINTS = 10_000
_RESERVED = {"experiment": "the sweep's experiment", "preset": "the sweep's preset"}
_MAX_PROBLEMS = 10


# -------------------------------------------------------------------------------- the spec
class SweepSpec(Spec):
    """A sweep: an experiment and preset, overrides shared by every point, axes, and seeds.

    ``base`` is a nested dict of overrides (like `parse_overrides` gives; a YAML file may also use
    dotted keys or a list of ``key=value`` strings). ``seeds`` replaces the experiment's own
    ``seeds`` list at every point: an int n means ``[0, ..., n-1]``.
    """

    experiment: str
    preset: str = "quick"
    base: dict[str, Any] = {}
    axes: list[str] | dict[str, Any]
    seeds: int | list[int] | None = None
    name: str | None = None

    @field_validator("base", mode="before")
    @classmethod
    def _nest_base(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return parse_overrides(value)
        return _nest(value) if isinstance(value, Mapping) else value

    @field_validator("axes", mode="before")
    @classmethod
    def _axes_shape(cls, value: Any) -> Any:
        ok_list = isinstance(value, list) and all(isinstance(v, str) for v in value)
        ok_map = isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
        if not (ok_list or ok_map):
            raise ValueError(f"give a list of PATH=VALUES strings or a mapping PATH: values, got {value!r}")
        return {k: _fix_numbers(v) for k, v in value.items()} if ok_map else value

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_shape(cls, value: Any) -> Any:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        is_list = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if value is not None and not (is_int or is_list):
            raise ValueError(f"give a number n of seeds (seeds 0..n-1) or a list of int seeds, got {value!r}")
        if is_int and value < 1:
            raise ValueError(f"a number of seeds must be > 0, got {value}")
        if is_list and (not value or len(set(value)) != len(value)):
            raise ValueError(f"a list of seeds must be non-empty, each seed once, got {value}")
        return value

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(f"use letters, digits, '-', '_' or '.' (it starts the sweep id), got {value!r}")
        return value

    @model_validator(mode="after")
    def _base_keys(self) -> SweepSpec:
        for key, owner in _RESERVED.items():
            if key in self.base:
                raise ValueError(f"base.{key}: set {owner} instead, got {self.base[key]!r}")
        if self.seeds is not None and "seeds" in self.base:
            raise ValueError(f"seeds: given both as the sweep's seeds ({self.seeds}) and in base "
                             f"({self.base['seeds']}); keep one")
        return self

    def parsed_axes(self) -> list[Axis]:
        """The axes as `Axis` objects, in order (ConfigError naming the axis on bad syntax)."""
        if isinstance(self.axes, Mapping):
            return [_axis_from_entry(path, value) for path, value in self.axes.items()]
        return [parse_axis(text) for text in self.axes]

    def seed_list(self) -> list[int] | None:
        """The seeds every point runs, or None to keep the experiment's own."""
        if self.seeds is None:
            return None
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def _nest(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict from a mapping that may use dotted keys (``{"train.lr": 1e-3}``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        value = _nest(value) if isinstance(value, Mapping) else _fix_numbers(value)
        out = merge(out, _nested({str(key): value}))
    return out


def _nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model.init.gamma": 1}`` -> ``{"model": {"init": {"gamma": 1}}}``."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_sweep(path: str | Path) -> SweepSpec:
    """A `SweepSpec` from a YAML file; every error names the file."""
    data = load_yaml(path)
    try:
        spec = validate(SweepSpec, data)
        spec.parsed_axes()
    except ConfigError as err:
        raise ConfigError([Problem(f"sweep file {path}", str(p)) for p in err.items]) from None
    return spec


def sweep_from_cli(experiment: str, axes: list[str], seeds: int | list[int] | str | None = None,
                   base_overrides: list[str] | None = None, preset: str = "quick",
                   name: str | None = None) -> SweepSpec:
    """A `SweepSpec` from command-line pieces: ``--axis`` strings, ``key=value`` base overrides.

    `seeds` may also be the text the user typed: ``3``, ``0,1,2`` or ``[0,1,2]``.
    """
    data = {"experiment": experiment, "preset": preset, "base": parse_overrides(list(base_overrides or [])),
            "axes": list(axes), "seeds": _cli_seeds(seeds), "name": name}
    spec = validate(SweepSpec, data)
    spec.parsed_axes()
    return spec


def _cli_seeds(seeds: int | list[int] | str | None) -> Any:
    if not isinstance(seeds, str):
        return seeds
    if "," in seeds and "[" not in seeds:
        return [parse_value(s) for s in seeds.split(",")]
    return parse_value(seeds)


# ---------------------------------------------------------------------------------- points
@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its axis values, the overrides that make it, its validated config."""

    index: int
    values: dict[str, Any]
    overrides: dict[str, Any]
    config: ExperimentSpec
    config_hash: str

    @property
    def label(self) -> str:
        """``model.init.gamma=0.5, train.lr=0.001``: the point's axis values."""
        return ", ".join(f"{path}={value}" for path, value in self.values.items())


def expand(spec: SweepSpec, max_points: int = DEFAULT_MAX_POINTS) -> list[SweepPoint]:
    """The Cartesian product of the axes (first axis slowest), every point resolved and validated.

    Raises ConfigError before anything runs: unknown experiment or preset, axis syntax, duplicate
    or overlapping axis paths, a path that is not in the experiment's config (with suggestions),
    more than `max_points` points, a base that is invalid on its own, or a value a field rejects
    (prefixed with the axis).
    """
    experiment = get_experiment(spec.experiment)
    _check_preset(experiment, spec.preset)
    axes = spec.parsed_axes()
    _check_axes(axes, spec, experiment)
    _check_size(axes, max_points)
    base_cfg = _resolve_base(experiment, spec, axes)
    points: list[SweepPoint] = []
    problems: list[Problem] = []
    for index, combo in enumerate(itertools.product(*(axis.values for axis in axes))):
        values = {axis.path: value for axis, value in zip(axes, combo)}
        try:
            points.append(_make_point(index, values, spec, experiment))
        except ConfigError as err:
            problems.extend(_blame(err, axes, index, values, base_cfg))
    if problems:
        raise ConfigError(_first_unique(problems))
    return points


def _check_preset(experiment: Experiment, preset: str) -> None:
    if preset not in experiment.presets:
        raise ConfigError([Problem("preset", f"must be one of {', '.join(experiment.presets)}", preset)])


def _check_axes(axes: list[Axis], spec: SweepSpec, experiment: Experiment) -> None:
    """At least one axis; no repeated, nested or reserved paths; every path in the config."""
    if not axes:
        raise ConfigError([Problem("axes", "a sweep needs at least one axis, e.g. --axis model.init.gamma=0.5:2:4")])
    paths = config_paths(experiment.config)
    for i, axis in enumerate(axes):
        for other in axes[:i]:
            if axis.path == other.path:
                raise _error(axis.label, f"{axis.path} is swept twice (also by {other.label}); merge the values")
            if _nested_paths(axis.path, other.path):
                raise _error(axis.label, f"overlaps {other.label}: one path lies inside the other")
        if axis.path in _RESERVED:
            raise _error(axis.label, f"{axis.path} cannot be swept; set {_RESERVED[axis.path]} (one sweep each)")
        if axis.path == "seeds" and spec.seeds is not None:
            raise _error(axis.label, "seeds are swept and also set by the sweep's seeds; keep one")
        _check_path(axis, paths, experiment.name)


def _nested_paths(a: str, b: str) -> bool:
    return a.startswith(b + ".") or b.startswith(a + ".")


def config_paths(config: type[BaseModel]) -> dict[str, str]:
    """Every dotted path of a spec class -> ``group``, ``value``, ``list`` or ``mapping`` (free dict).

    Walks the classes, not an instance, so that fields that hold None by default (``model.width``
    when ``model.widths`` is set) are paths too.
    """
    paths: dict[str, str] = {}
    for name, info in config.model_fields.items():
        annotation = info.annotation
        family = family_of(annotation, info.metadata)
        models = family.classes() if family is not None else _models_in(annotation)
        if models:
            paths[name] = "group"
            for model in models:
                paths.update({f"{name}.{sub}": kind for sub, kind in config_paths(model).items()})
        else:
            paths[name] = _leaf_kind(annotation)
    return paths


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The spec classes a field may hold directly (through Optional, Union and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if typing.get_origin(annotation) is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    return []


def _leaf_kind(annotation: Any) -> str:
    origin = typing.get_origin(annotation) or annotation
    if origin in (dict, Mapping):
        return "mapping"
    if origin in (list, tuple, set, frozenset):
        return "list"
    return "value"


def _check_path(axis: Axis, paths: dict[str, str], experiment: str) -> None:
    """ConfigError unless the axis path is in the config (or below a free mapping such as ``check``)."""
    parts = axis.path.split(".")
    for i in range(1, len(parts)):
        head = ".".join(parts[:i])
        kind = paths.get(head)
        if kind == "mapping":
            return
        if kind == "list":
            raise _error(axis.label, f"{head} is a list; an axis cannot reach into a list "
                                     f"(sweep the whole {head} value instead)")
        if kind != "group":
            break
    if axis.path in paths:
        return
    close = difflib.get_close_matches(axis.path, list(paths), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise _error(axis.label, f"{axis.path} is not a path of the {experiment} config{hint}")


def _check_size(axes: list[Axis], max_points: int) -> None:
    sizes = [len(axis.values) for axis in axes]
    total = math.prod(sizes)
    if total == 0:
        empty = next(axis for axis in axes if not axis.values)
        raise _error(empty.label, "empty list of values, so the sweep has no points")
    if total > max_points:
        raise ConfigError([Problem("axes", f"the sweep has {total} points ({' x '.join(map(str, sizes))}), more than "
                                           f"max_points={max_points}; narrow an axis or raise max_points")])


def _base_overrides(spec: SweepSpec) -> dict[str, Any]:
    seeds = spec.seed_list()
    return merge(spec.base, {"seeds": seeds}) if seeds is not None else dict(spec.base)


def _resolve_base(experiment: Experiment, spec: SweepSpec, axes: list[Axis]) -> ExperimentSpec | None:
    """The config with only the base applied; a base that is wrong whatever the axes say is an error.

    Returns None when the base alone fails only on paths that the axes set (they may fix it).
    """
    try:
        return experiment.resolve(spec.preset, _base_overrides(spec))
    except ConfigError as err:
        if any(_related_axes(item.path, axes) for item in err.items):
            return None
        raise ConfigError([Problem("sweep base", str(item)) for item in err.items]) from None


def _make_point(index: int, values: dict[str, Any], spec: SweepSpec, experiment: Experiment) -> SweepPoint:
    overrides = copy.deepcopy(merge(_base_overrides(spec), _nested(values)))
    cfg = experiment.resolve(spec.preset, overrides)
    return SweepPoint(index, copy.deepcopy(values), overrides, cfg, config_hash(cfg))


def _config_path(path: str) -> str:
    """A problem's path as the axes write it: ``probes[0].options.k`` -> ``probes.0.options.k``."""
    return path.replace("[", ".").replace("]", "")


def _related_axes(path: str, axes: list[Axis]) -> list[Axis]:
    """The axes whose path is, contains or lies inside a problem's `path`."""
    path = _config_path(path)
    return [a for a in axes if a.path == path or _nested_paths(a.path, path)]


def _blame(err: ConfigError, axes: list[Axis], index: int, values: dict[str, Any],
           base_cfg: ExperimentSpec | None) -> list[Problem]:
    """Each problem under the axes its path concerns, or else under the whole point.

    A problem at a group that holds several swept fields (``model.init: give either std or
    gamma``) goes to the axes whose field its reason names, or to all of them if it names none."""
    out = []
    for item in err.items:
        if isinstance(item.value, dict):  # the whole rejected group adds nothing to the axis values
            item = replace(item, value=MISSING)
        related = _related_axes(item.path, axes)
        if not related:
            point = ", ".join(f"{path}={value!r}" for path, value in values.items())
            out.append(Problem(f"sweep point {index} ({point})", str(item)))
            continue
        path = _config_path(item.path)
        mentioned = [a for a in related if _mentions(item.reason, _relative(a.path, path))]
        related = mentioned or related
        hint = _unset_hint(related[0], item, base_cfg) if len(related) == 1 else ""
        out.append(Problem(" and ".join(a.label for a in related), f"{item}{hint}"))
    return out


def _mentions(text: str, word: str) -> bool:
    """Whether `word` (a field name or dotted path) appears in `text` as a whole, not as part of a path."""
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w.])", text) is not None


def _relative(path: str, parent: str) -> str:
    """``model.init.gamma`` relative to ``model`` is ``init.gamma``."""
    return path[len(parent) + 1:] if path.startswith(parent + ".") else path


def _unset_hint(axis: Axis, item: Problem, base_cfg: ExperimentSpec | None) -> str:
    """A hint when a parent-level check rejects an axis whose field is unset (None) in the config.

    E.g. ``model.width`` is None in f-principle because ``model.widths`` is set: when the reason
    names exactly one set sibling, say how to clear it.
    """
    path = _config_path(item.path)
    if base_cfg is None or not axis.path.startswith(path + "."):
        return ""
    parent_path, leaf = axis.path.rsplit(".", 1)
    parent = _lookup(base_cfg.model_dump(), parent_path)
    if not isinstance(parent, dict) or parent.get(leaf, 0) is not None:
        return ""
    siblings = [k for k, v in parent.items() if k != leaf and v is not None and _mentions(item.reason, k)]
    if len(siblings) != 1:
        return ""
    other = f"{parent_path}.{siblings[0]}"
    return (f" (hint: {axis.path} is unset in the {base_cfg.experiment} config because {other} stands in "
            f"for it; to sweep {axis.path}, clear it in the sweep's base: {other}=null)")


def _lookup(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def _first_unique(problems: list[Problem]) -> list[Problem]:
    first: dict[str, Problem] = {}
    for problem in problems:
        first.setdefault(str(problem), problem)
    unique = list(first.values())
    if len(unique) <= _MAX_PROBLEMS:
        return unique
    return unique[:_MAX_PROBLEMS] + [Problem("", f"... and {len(unique) - _MAX_PROBLEMS} more problems")]


# ---------------------------------------------------------------------------- id, grouping
def sweep_id(spec: SweepSpec) -> str:
    """A stable short id: hash of experiment, preset, base, axis values and seeds; ``name-`` prefix."""
    payload = {
        "experiment": spec.experiment,
        "preset": spec.preset,
        "base": spec.base,
        "axes": [[axis.path, list(axis.values)] for axis in spec.parsed_axes()],
        "seeds": spec.seed_list(),
    }
    digest = config_hash(payload)[:12]
    return f"{spec.name}-{digest}" if spec.name else digest


def group_points(points: Iterable[SweepPoint], key: Callable[[SweepPoint], Hashable]) -> list[list[SweepPoint]]:
    """Points grouped by `key`, groups in order of first appearance, points in order within a group."""
    groups: dict[Hashable, list[SweepPoint]] = {}
    for point in points:
        groups.setdefault(key(point), []).append(point)
    return list(groups.values())
