"""How values are written to and read back from the store: UTC timestamps, JSON columns, run rows."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

import numpy as np

JSON_COLUMNS = ("config", "summary", "verdict")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 with microseconds and offset, e.g. ``2026-11-22T10:00:00.123456+00:00`` (sorts as text)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    """Inverse of `iso`."""
    return datetime.fromisoformat(text)


def seconds_between(start: str, end: str) -> float:
    """Seconds from ISO timestamp `start` to `end`."""
    return (parse_iso(end) - parse_iso(start)).total_seconds()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "item") and callable(value.item):  # 0-d tensors and the like
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def to_json(value: Any) -> str | None:
    """JSON text of `value` (None stays NULL); numpy values become plain numbers, NaN stays NaN."""
    if value is None:
        return None
    return json.dumps(value, default=_json_default)


def from_json(text: str | None) -> Any:
    """Inverse of `to_json`."""
    return None if text is None else json.loads(text)


def run_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A `runs` row as the API returns it: JSON columns parsed, `passed` as bool or None."""
    run = dict(row)
    run.setdefault("code_version", None)  # a read-only store older than schema 3 has no such column
    for column in JSON_COLUMNS:
        run[column] = from_json(run.get(column))
    if run.get("passed") is not None:
        run["passed"] = bool(run["passed"])
    return run

