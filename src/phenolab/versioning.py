"""Code versions: which source produced a stored training or measurement result.

A run is reused by its config hash only when it was also stored under the current code version,
so a fix to the code that decides a run's numbers is never masked by a result the old code made.

- `code_version()`: a short hash of the source of the rooms that decide a training run's numbers:
  ``config/`` (defaults, resolved specs), ``activations.py``, ``objectives.py``, ``models/``, ``tasks/``, ``train/``
  (loops, losses, ensembles, the recorder) and ``probes/`` (what is measured while training).
  Read from the package's own files at first use and cached for the life of the process.
- `measure_version(compute)`: `code_version()` plus the source of the module that defines a
  measurement's compute function.

Analysis, verdicts and figures are not covered: they are recomputed from the stored runs every
time an experiment is run, so a fix there needs no new training. `config_hash` stays a function
of the config alone (it is shown to users and is the sweep id).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
ROOMS = ("config", "activations.py", "objectives.py", "models", "tasks", "train", "probes")
LENGTH = 16  # hex digits kept


def _source_files(root: Path, rooms: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for room in rooms:
        path = root / room
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(set(files), key=lambda p: p.relative_to(root).as_posix())


def digest_files(root: Path, rooms: tuple[str, ...] = ROOMS) -> str:
    """Hash of the files' paths (relative to `root`) and bytes; LENGTH hex digits."""
    h = hashlib.sha256()
    for path in _source_files(root, rooms):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        data = path.read_bytes()
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:LENGTH]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The code version of training runs: the source of `ROOMS` in this package, hashed once."""
    return digest_files(PACKAGE)


@functools.lru_cache(maxsize=None)
def module_digest(module: str) -> str:
    """Hash of the source file of the imported `module` (its name when the source is not found)."""
    h = hashlib.sha256(module.encode() + b"\0")
    mod = sys.modules.get(module)
    try:
        source = inspect.getsourcefile(mod) if mod is not None else None
    except TypeError:  # a built-in module
        source = None
    if source is not None and Path(source).is_file():
        h.update(Path(source).read_bytes())
    return h.hexdigest()[:LENGTH]


def measure_version(compute: Callable[..., Any]) -> str:
    """The code version of a measurement run: `code_version()` and the source of `compute`'s module."""
    both = f"{code_version()}:{module_digest(compute.__module__)}"
    return hashlib.sha256(both.encode()).hexdigest()[:LENGTH]
