"""`key=value` overrides, YAML config files and the merge of nested config dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from phenolab.config.errors import ConfigError, Problem


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
