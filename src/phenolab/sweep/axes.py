"""Sweep axes: ``PATH=VALUES`` parsed into an `Axis` (a list, a linear range ``a:b:n`` or a log
range ``a:b:n:log``; see `phenolab.sweep.spec` for the syntax a user types)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phenolab.config import ConfigError, Problem, canonical_json, parse_value

MAX_RANGE_POINTS = 100_000  # one range axis; the product is guarded by `max_points`
RANGE_SYNTAX = "a range is a:b:n or a:b:n:log"
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class Axis:
    """One swept config path and its values, in order. `label` names it in error messages."""

    path: str
    values: tuple[Any, ...]
    label: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.label:
            object.__setattr__(self, "label", f"axis {self.path}")


def parse_axis(text: str) -> Axis:
    """``"model.width=125,250"`` or ``"train.lr=1e-4:1e-2:3:log"`` -> `Axis`; ConfigError names the text."""
    label = f"--axis {text}"
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not _is_dotted(path):
        raise _error(label, "an axis is PATH=VALUES, e.g. model.width=100,200 or train.lr=1e-4:1e-2:3:log")
    return Axis(path, parse_values(raw, label), label)


def parse_values(text: str, label: str) -> tuple[Any, ...]:
    """The VALUES part of an axis: a comma list, ``a:b:n`` or ``a:b:n:log``."""
    text = text.strip()
    if not text:
        raise _error(label, "empty list of values")
    items = _split_top_level(text, ",", label)
    if len(items) == 1 and len(_split_top_level(items[0], ":", label)) > 1:
        return _parse_range(items[0], label)
    if any(len(_split_top_level(item, ":", label)) > 1 for item in items):
        raise _error(label, f"give either a list a,b,c or a range ({RANGE_SYNTAX}), not both")
    if any(not item for item in items):
        raise _error(label, "empty value in the list (two commas in a row, or a trailing comma?)")
    return _unique_values([_fix_numbers(parse_value(item)) for item in items], label)


def _axis_from_entry(path: str, value: Any) -> Axis:
    """An axis given in YAML as ``path: [values]`` or ``path: "a:b:n"``."""
    label = f"axis {path}"
    if not isinstance(path, str) or not _is_dotted(path.strip()):
        raise _error(label, "an axis path is dotted, e.g. model.init.gamma")
    path = path.strip()
    if isinstance(value, str):
        return Axis(path, parse_values(value, label), label)
    if isinstance(value, (list, tuple)):
        if not value:
            raise _error(label, "empty list of values")
        return Axis(path, _unique_values([_fix_numbers(v) for v in value], label), label)
    if value is None or isinstance(value, Mapping):
        raise _error(label, f"give a list of values or a string such as 0.5:4:8, got {value!r}")
    return Axis(path, (value,), label)


def _is_dotted(path: str) -> bool:
    return bool(path) and all(part and not any(c.isspace() or c == "=" for c in part) for part in path.split("."))


def _split_top_level(text: str, sep: str, label: str) -> list[str]:
    """Split on `sep` outside brackets, braces, parentheses and quotes; items are stripped."""
    items, depth, quote, start, escaped = [], 0, "", 0, False
    for i, char in enumerate(text):
        if quote:
            escaped = char == "\\" and quote == '"' and not escaped
            quote = "" if char == quote and not escaped else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
            if depth < 0:
                raise _error(label, f"unbalanced {char!r}")
        elif char == sep and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    if depth or quote:
        raise _error(label, "unbalanced brackets or quotes")
    return items + [text[start:].strip()]


def _parse_range(text: str, label: str) -> tuple[Any, ...]:
    parts = [p.strip() for p in text.split(":")]
    log = len(parts) == 4 and parts[3].lower() == "log"
    if len(parts) not in (3, 4) or (len(parts) == 4 and not log):
        raise _error(label, RANGE_SYNTAX)
    a, b = _number(parts[0]), _number(parts[1])
    if a is None or b is None:
        raise _error(label, f"{RANGE_SYNTAX} with numbers a and b, got a={parts[0]!r}, b={parts[1]!r}")
    n = _count(parts[2])
    if n is None:
        raise _error(label, f"n must be a positive integer, got {parts[2]!r}")
    if n > MAX_RANGE_POINTS:
        raise _error(label, f"n must be <= {MAX_RANGE_POINTS}, got {n}")
    if log and not (a > 0 and b > 0):
        raise _error(label, f"a log range needs a, b > 0, got a={a}, b={b}")
    points = _geomspace(a, b, n) if log else _linspace(a, b, n)
    return _unique_values(_tidy(points, isinstance(a, int) and isinstance(b, int)), label)


def _number(text: str) -> int | float | None:
    value = parse_value(text) if text else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _count(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\+?\d+", text) and int(text) > 0 else None


def _linspace(a: float, b: float, n: int) -> list[float]:
    if n == 1:
        return [a]
    return [a + (b - a) * i / (n - 1) for i in range(n - 1)] + [b]


def _geomspace(a: float, b: float, n: int) -> list[float]:
    if n == 1:
        return [a]
    return [a * (b / a) ** (i / (n - 1)) for i in range(n - 1)] + [b]


def _tidy(points: list[float], integer_ends: bool) -> list[int | float]:
    """Round to 12 significant digits; integers when both ends are and every point is integral."""
    rounded = [float(f"{p:.12g}") for p in points]
    if integer_ends and all(r.is_integer() for r in rounded):
        return [int(r) for r in rounded]
    return rounded


def _fix_numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; read it as the float it means (also inside lists)."""
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_fix_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _fix_numbers(v) for k, v in value.items()}
    return value


def _unique_values(values: Sequence[Any], label: str) -> tuple[Any, ...]:
    seen: set[str] = set()
    for value in values:
        key = canonical_json({"v": value})
        if key in seen:
            raise _error(label, f"value {value!r} appears more than once")
        seen.add(key)
    return tuple(values)


def _error(label: str, reason: str) -> ConfigError:
    return ConfigError([Problem(label, reason)])
