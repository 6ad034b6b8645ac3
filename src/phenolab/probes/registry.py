"""The probe registry: a probe is a pure function ``(model, task, **options) -> dict``.

Values are Python floats (scalars, recorded as metric series) or numpy arrays (recorded as
artifacts stacked over the probe steps). A probe never trains, prints or writes files, and
works on any ``nn.Module`` that maps a (n, d) input tensor to outputs.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from phenolab.tasks.base import Task

ProbeResult = dict[str, "float | np.ndarray"]
ProbeFn = Callable[..., ProbeResult]

_PROBES: dict[str, ProbeFn] = {}
_NEEDS_REFERENCE: set[str] = set()


def register_probe(name: str, *, needs_reference: bool = False) -> Callable[[ProbeFn], ProbeFn]:
    """Decorator: register `fn` under `name` (names are unique).

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
        note_registered("probe", name, fn.__module__)
        if needs_reference:
            _NEEDS_REFERENCE.add(name)
        return fn

    return wrap


def needs_reference(name: str) -> bool:
    """Whether probe `name` takes a ``reference`` parameter point (see `register_probe`)."""
    get_probe(name)
    return name in _NEEDS_REFERENCE


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
