"""Plugins: experiments and probes (later models and tasks) registered from a researcher's own package.

A plugin is a module whose import registers entries with phenolab's registries (`register`,
`register_probe`, ...). Three ways name one:

- a Python entry point in the group ``phenolab.plugins`` of an installed distribution
  (``[project.entry-points."phenolab.plugins"] my_lab = "my_lab.phenomena"``); its value names a
  module, or ``module:callable``, and the callable is then called once with no arguments;
- the environment variable ``PHENOLAB_PLUGINS``: comma-separated importable module names or paths
  to ``.py`` files (a file is imported as the module named by its stem);
- the command line's ``phenolab --plugin MODULE_OR_FILE`` (repeatable), which appends to
  ``PHENOLAB_PLUGINS`` so that executor workers, fresh processes, inherit it.

`load_plugins()` imports each plugin once per process. Registries call it lazily from their
loaders, after importing their built-in entries (the experiment catalog, the probe modules): this
module imports nothing of phenolab, so any registry (models and tasks too) can call it without an
import cycle. While a plugin imports, `current_plugin()` names it, so a registry can note which
plugin provided an entry (`note_registered`, `provided_by`) and name both sides of a clash
(`already_registered`). A plugin that fails to import, or registers a name that exists, raises
`PluginError` with a one-line message (the command line prints it and exits 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "phenolab.plugins"
ENV_VAR = "PHENOLAB_PLUGINS"


class PluginError(ValueError):
    """A plugin failed to load, or registered a name that is already taken; one line."""


@dataclass(frozen=True)
class Plugin:
    """One plugin: `how` is ``entry point``, ``module`` or ``file``; `target` the module name, the
    entry point's value or the file's path; `dist` the distribution that declares an entry point."""

    name: str
    how: str
    target: str
    dist: str | None = None

    @property
    def label(self) -> str:
        """Short, for tables: ``plugin: DIST`` for an entry point, ``plugin: MODULE`` otherwise."""
        return f"plugin: {self.dist or self.name}"

    def describe(self) -> str:
        """For messages: which plugin, and how it was named."""
        if self.how == "entry point":
            dist = f" of {self.dist}" if self.dist else ""
            return f"plugin {self.name!r} (entry point {self.target!r}{dist})"
        if self.how == "file":
            return f"plugin {self.target!r}"
        return f"plugin {self.name!r} (module)"


_lock = threading.RLock()
_loading: list[Plugin] = []  # the plugin being imported (a stack: a plugin may trigger another registry's load)
_loaded: dict[str, Plugin] = {}  # key -> plugin, in load order
_failed: dict[str, PluginError] = {}
_entry_points: list[tuple[str, Plugin, Any]] | None = None  # scanned once per process
_env_seen: str | None = None
_provided: dict[tuple[str, str], Plugin] = {}


def load_plugins() -> list[Plugin]:
    """Import every plugin not imported yet (entry points, then ``PHENOLAB_PLUGINS`` in order) and
    return the loaded ones. Cheap when nothing changed. A call made while a plugin imports (its
    import reached a registry) returns at once. Raises `PluginError` for a plugin that failed,
    now or earlier in this process."""
    global _entry_points, _env_seen
    env = os.environ.get(ENV_VAR, "")
    if _entry_points is not None and env == _env_seen and not _loading:  # fast path: nothing new
        _raise_failed()
        return list(_loaded.values())
    with _lock:
        if _loading:  # re-entered from inside a plugin's import
            return list(_loaded.values())
        if _entry_points is None:
            _entry_points = _scan_entry_points()
        wanted: list[tuple[str, Plugin, Any]] = list(_entry_points)
        wanted += [_from_env_item(item) for item in _split(env)]
        for key, plugin, load in wanted:
            if key in _loaded or key in _failed:
                continue
            _load_one(key, plugin, load)
        _env_seen = env
        _raise_failed()
        return list(_loaded.values())


def loaded_plugins() -> list[Plugin]:
    """The plugins imported so far in this process (no loading)."""
    return list(_loaded.values())


def current_plugin() -> Plugin | None:
    """The plugin whose import is running now, or None."""
    return _loading[-1] if _loading else None


def add_plugins(items: list[str]) -> None:
    """Append module names or ``.py`` paths (made absolute) to ``PHENOLAB_PLUGINS`` in this
    process's environment, so that the next `load_plugins()` and every child process see them."""
    current = _split(os.environ.get(ENV_VAR, ""))
    for item in items:
        item = item.strip()
        if not item:
            continue
        if _is_path(item):
            item = str(Path(item).expanduser().resolve())
        if item not in current:
            current.append(item)
    os.environ[ENV_VAR] = ",".join(current)


def note_registered(kind: str, name: str, module: str) -> None:
    """Registries call this after registering `name` (of `kind`, e.g. ``experiment``) from code in
    `module`: an entry registered during a plugin's import by code outside phenolab is the plugin's."""
    plugin = _plugin_of(module)
    if plugin is not None:
        _provided[(kind, name)] = plugin


def provided_by(kind: str, name: str) -> Plugin | None:
    """The plugin that registered `name`, or None for phenolab's own entries."""
    return _provided.get((kind, name))


def already_registered(kind: str, name: str, old_module: str, new_module: str) -> ValueError:
    """The error for registering `name` twice: a `PluginError` naming both sides when a plugin is
    one of them, else the registries' plain ValueError (a clash inside phenolab is a bug)."""
    old, new = provided_by(kind, name), _plugin_of(new_module)
    if old is None and new is None:
        return ValueError(f"{kind} {name!r} is already registered")
    first = old.describe() if old else f"{old_module}"
    second = new.describe() if new else f"{new_module}"
    return PluginError(f"{kind} {name!r} is registered twice: by {first} and by {second}; rename one")


# ------------------------------------------------------------------------------------- internals
def _plugin_of(module: str) -> Plugin | None:
    if module == "phenolab" or module.startswith("phenolab."):
        return None  # a plugin that imports a catalog module to reuse it does not own its entries
    return current_plugin()


def _raise_failed() -> None:
    if _failed:
        raise next(iter(_failed.values()))


def _split(env: str) -> list[str]:
    return [item.strip() for item in env.split(",") if item.strip()]


def _is_path(item: str) -> bool:
    return item.endswith(".py") or "/" in item or os.sep in item


def _scan_entry_points() -> list[tuple[str, Plugin, Any]]:
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        plugin = Plugin(name=ep.name, how="entry point", target=ep.value, dist=dist)
        found.append((f"entry point {ep.name}={ep.value}", plugin, ep.load))
    return found


def _from_env_item(item: str) -> tuple[str, Plugin, Any]:
    if _is_path(item):
        path = Path(item).expanduser().resolve()
        return f"file {path}", Plugin(name=path.stem, how="file", target=str(path)), lambda: _import_file(path)
    return f"module {item}", Plugin(name=item, how="module", target=item), lambda: importlib.import_module(item)


def _import_file(path: Path) -> Any:
    """Import a ``.py`` file as the module named by its stem (so that its functions pickle by
    reference into worker processes, which load the same plugins)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file {str(path)!r}")
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if existing.__file__ and Path(existing.__file__).resolve() == path:
            return existing
        raise ImportError(f"a module named {name!r} is already imported from "
                          f"{getattr(existing, '__file__', None) or 'elsewhere'}; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {str(path)!r} (not a Python file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_one(key: str, plugin: Plugin, load: Any) -> None:
    _loading.append(plugin)
    try:
        obj = load()
        if plugin.how == "entry point" and callable(obj) and not isinstance(obj, type(sys)):
            obj()
    except PluginError as exc:
        _failed[key] = exc
        return
    except (Exception, SystemExit) as exc:
        _failed[key] = PluginError(f"{plugin.describe()} failed to load: {_one_line(exc)}")
        return
    finally:
        _loading.pop()
    _loaded[key] = plugin


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
