"""Small helpers that turn metric series into the numbers verdicts compare."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd


def first_step_below(series: pd.Series, threshold: float) -> int | None:
    """The first step at which `series` < `threshold`, or None if it never gets there."""
    hits = series.index[series.to_numpy() < threshold]
    return int(hits[0]) if len(hits) else None


def fraction_true(mask: Iterable[bool]) -> float:
    values = list(mask)
    return float(np.mean(values)) if values else math.nan


def median_or_none(values: Iterable[float | None]) -> float | None:
    """Median of the finite values, or None if there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None
