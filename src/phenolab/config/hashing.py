"""Canonical JSON of a resolved config and its hash (the run's and the sweep's id)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import BaseModel


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
