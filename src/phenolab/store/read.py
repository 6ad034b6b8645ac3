"""Query helpers that return pandas DataFrames: the run table and a run's metric curves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from phenolab.store.registry import Store

RUN_COLUMNS = (
    "id", "kind", "name", "label", "parent_id", "sweep_id", "status", "passed", "config_hash",
    "started", "finished", "duration_s", "error", "config", "summary", "verdict",
)


@contextmanager
def _opened(store: str | Path | Store | None) -> Iterator[Store]:
    """`store` itself if it is a Store (left open), else a read-only Store closed afterwards."""
    if isinstance(store, Store):
        yield store
        return
    with Store(store, readonly=True) as opened:
        yield opened


def load_runs(store: str | Path | Store | None = None, **filters: Any) -> pd.DataFrame:
    """One row per run, newest first; `filters` as `Store.list_runs` (name, kind, status, ...).

    `config`, `summary` and `verdict` hold dicts (or None); `started`/`finished` are UTC
    timestamps, `passed` a nullable boolean.
    """
    with _opened(store) as st:
        runs = st.list_runs(**filters)
    frame = pd.DataFrame([[r.get(c) for c in RUN_COLUMNS] for r in runs], columns=list(RUN_COLUMNS))
    frame = frame.astype({"id": "int64", "parent_id": "Int64", "passed": "boolean", "duration_s": "float64"})
    for column in ("started", "finished"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def load_metrics(run_id: int, store: str | Path | Store | None = None, *, wide: bool = True) -> pd.DataFrame:
    """A run's metrics: wide (index `step`, one column per metric name) or long (step, name, value)."""
    with _opened(store) as st:
        long = st.metrics(run_id)
    if not wide:
        return long
    if long.empty:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="step"))
    table = long.pivot(index="step", columns="name", values="value").sort_index()
    table.columns.name = None
    return table
