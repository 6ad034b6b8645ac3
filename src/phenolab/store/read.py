"""Query helpers that return pandas DataFrames: the run table and a run's metric curves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from phenolab.store.registry import Store
from phenolab.store.summary import flatten_config

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
    """One row per run, newest first; `filters` as `Store.list_runs`: name, kind, status,
    parent_id, sweep_id, experiment (name or experiment run id), where (config fields, e.g.
    ``where={"model.width": 100}`` or ``where=["model.width=100"]``), limit.

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


SUMMARY_COLUMNS = (
    "id", "kind", "name", "label", "experiment", "experiment_id", "sweep_id", "status", "passed",
    "config_hash", "finished", "duration_s",
)


def load_summary(store: str | Path | Store | None = None, **filters: Any) -> pd.DataFrame:
    """One row per finished run (newest first; `filters` as `load_runs`), flat, for phase diagrams:
    the run's ids and status, ``config.<path>`` for every scalar config field, ``final.<metric>``
    (the value at the metric's last step) and, for experiment runs, ``check.<name>`` (measured)
    and ``check.<name>.passed``. Runs still running have no summary and are left out.
    """
    with _opened(store) as st:
        runs = [r for r in st.list_runs(**filters) if r["status"] != "running"]
        summaries = st.summaries(r["id"] for r in runs)
    rows = []
    for run in runs:
        summary = summaries.get(run["id"])
        if summary is None:
            continue
        row: dict[str, Any] = {c: summary.get(c, run.get(c)) for c in SUMMARY_COLUMNS if c != "id"}
        row = {"id": run["id"], **row}
        row.update({f"config.{k}": v for k, v in flatten_config(run.get("config") or {}).items()})
        for check in summary["checks"]:
            row[f"check.{check['name']}"] = check["measured"]
            row[f"check.{check['name']}.passed"] = check["passed"]
        row.update({f"final.{k}": v for k, v in summary["final"].items()})
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    columns = [*SUMMARY_COLUMNS, *(k for k in keys if k not in SUMMARY_COLUMNS)]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"id": "int64", "experiment_id": "Int64", "passed": "boolean", "duration_s": "float64"})
    frame["finished"] = pd.to_datetime(frame["finished"], utc=True, format="ISO8601")
    return frame
