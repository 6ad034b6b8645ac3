"""The probe registry: a probe is a pure function ``(model, task, **options) -> dict``.

Values are Python floats (scalars, recorded as metric series) or numpy arrays (recorded as
artifacts stacked over the probe steps). A probe never trains, prints or writes files, and
works on any ``nn.Module`` that maps a (n, d) input tensor to outputs.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from phenolab.config import ConfigError, Problem
from phenolab.probes.requirements import Requirement
from phenolab.tasks.base import Task

ProbeResult = dict[str, "float | np.ndarray"]
ProbeFn = Callable[..., ProbeResult]

_PROBES: dict[str, ProbeFn] = {}
_NEEDS_REFERENCE: set[str] = set()
_REQUIRES: dict[str, tuple[Requirement, ...]] = {}


def register_probe(name: str, *, needs_reference: bool = False,
                   requires: Sequence[Requirement] = ()) -> Callable[[ProbeFn], ProbeFn]:
    """Decorator: register `fn` under `name` (names are unique).

    ``requires``: what the probe needs of the model and the task (`phenolab.probes.requirements`),
    checked by `check_requirements` on an experiment's first built model before anything is stored.

    ``needs_reference=True``: the probe compares the model with an earlier parameter point and
    takes it as option ``reference`` (a dict name -> tensor, like ``model.state_dict()``); the
    Recorder passes the parameters of the model's first probed step (the initialization, in
    phenolab's trainers) unless the caller gives one.
    """

    def wrap(fn: ProbeFn) -> ProbeFn:
        from phenolab.plugins import already_registered, note_registered

        if name in _PROBES and _PROBES[name] is not fn:
            raise already_registered("probe", name, _PROBES[name].__module__, fn.__module__)
        _PROBES[name] = fn
        _REQUIRES[name] = tuple(requires)
        note_registered("probe", name, fn.__module__)
        if needs_reference:
            _NEEDS_REFERENCE.add(name)
        return fn

    return wrap


def needs_reference(name: str) -> bool:
    """Whether probe `name` takes a ``reference`` parameter point (see `register_probe`)."""
    get_probe(name)
    return name in _NEEDS_REFERENCE


def requirements(name: str) -> tuple[Requirement, ...]:
    """What probe `name` declared it needs (`register_probe`'s ``requires``)."""
    get_probe(name)
    return _REQUIRES.get(name, ())


def check_requirements(names: Sequence[str], model: nn.Module, task: Task) -> list[str]:
    """One line per unmet requirement of the probes `names` (by position) on `model` and `task`:
    ``probes[i]: probe NAME needs REQUIREMENT; REASON``. Empty when every probe can run."""
    problems = []
    for i, name in enumerate(names):
        for req in requirements(name):
            reason = req.problem(model, task)
            if reason is not None:
                problems.append(f"probes[{i}]: probe {name!r} needs {req.name}; {reason}")
    return problems


def get_probe(name: str) -> ProbeFn:
    """The probe called `name`; a KeyError names the registered ones."""
    _load_builtin()
    try:
        return _PROBES[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r}; registered: {', '.join(sorted(_PROBES))}") from None


def probe_names() -> list[str]:
    _load_builtin()
    return sorted(_PROBES)


def bind_probe_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of probe `name` checked against its function's signature, before anything runs.

    A ConfigError (paths ``options.KEY``, relative to the probe's entry) for an option the function
    does not take (unless it takes ``**kwargs``), with the closest name and the allowed ones; for
    ``model`` or ``task`` (the trainer passes them); for ``reference`` of a probe that needs a
    reference point (the Recorder passes it, see `register_probe`); and for a keyword the
    function requires that `options` lacks. Returns the options as a new dict.
    """
    params = list(inspect.signature(get_probe(name)).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:2]
    supplied = {"model": "the trainer", "task": "the trainer"}
    supplied.update({p.name: "the trainer" for p in positional})
    if name in _NEEDS_REFERENCE:
        supplied["reference"] = "the recorder (the parameters at the model's first probed step)"
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in supplied]
    allowed = sorted(p.name for p in named)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    problems = []
    for key in options:
        if key in supplied:
            problems.append(Problem(f"options.{key}", f"probe {name} gets {key} from {supplied[key]}; "
                                                      "it is not an option"))
        elif key not in allowed and not takes_any:
            hint = difflib.get_close_matches(key, allowed, n=1)
            reason = f"unknown option of probe {name}" + (f"; did you mean '{hint[0]}'?" if hint else "")
            if not allowed:
                reason += " (it takes no options)"
            problems.append(Problem(f"options.{key}", reason, allowed=tuple(allowed) or None))
    missing = [p.name for p in named if p.default is p.empty and p.name not in options]
    if missing:
        problems.append(Problem("options", f"probe {name} needs the option(s) {', '.join(missing)}"))
    if problems:
        raise ConfigError(problems)
    return dict(options)


def run_probe(name: str, model: nn.Module, task: Task, **options: Any) -> ProbeResult:
    """Call a registered probe and check that it returned floats and arrays only."""
    out = get_probe(name)(model, task, **options)
    clean: ProbeResult = {}
    for key, value in out.items():
        if isinstance(value, np.ndarray):
            clean[key] = value
        elif isinstance(value, torch.Tensor):
            clean[key] = value.detach().cpu().numpy() if value.ndim else float(value)
        else:
            clean[key] = float(value)
    return clean


def _load_builtin() -> None:
    """Import every public module of `phenolab.probes` (basic, frequency, ...), then the plugins
    (`phenolab.plugins`): importing a module registers its probes. Python caches the imports, so
    repeated calls are cheap."""
    import importlib
    import pkgutil

    import phenolab.probes as package
    from phenolab.plugins import load_plugins

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"phenolab.probes.{info.name}")
    load_plugins()  # then the probes of plugins (entry points, $PHENOLAB_PLUGINS, --plugin)
