"""Metric series of a run: (step, name, value) rows written and read back (a base of `Store`)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from phenolab.store.connection import StoreConnection, _run_id
from phenolab.store.encoding import iso, utc_now
from phenolab.store.errors import StoreError
from phenolab.store.summary import refresh_final_metrics


class MetricSeries(StoreConnection):
    """Metric rows of a run (mixed into `Store`)."""

    def log_metrics(self, run_id: int, rows: Iterable[tuple[int, str, float]]) -> None:
        """Add (step, name, value) rows in one transaction; a row for an existing (name, step) replaces it.

        A bad row (ValueError/TypeError) rolls the whole call back. NaN is stored as NULL and
        read back as NaN. Also counts as a heartbeat.
        """
        rid = _run_id(run_id)
        with self._writing() as conn:
            cursor = conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (iso(utc_now()), rid))
            if cursor.rowcount == 0:
                raise StoreError(f"no run {run_id} in {self.path}")
            conn.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, name, step, value) VALUES (?, ?, ?, ?)",
                (_metric_row(rid, i, row) for i, row in enumerate(rows)),
            )
            refresh_final_metrics(conn, rid)  # only if the run had already finished

    def metrics(self, run_id: int, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Long format: columns step, name, value, sorted by name then step."""
        sql = "SELECT step, name, value FROM metrics WHERE run_id = ?"
        params: list[Any] = [_run_id(run_id)]
        if names is not None:
            names = [names] if isinstance(names, str) else list(names)
            sql += f" AND name IN ({', '.join('?' for _ in names)})"
            params.extend(names)
        with self._reading() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(sql + " ORDER BY name, step", params).fetchall()
        return pd.DataFrame({
            "step": np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            "name": pd.Series([r[1] for r in rows], dtype=str),
            "value": np.fromiter((np.nan if r[2] is None else r[2] for r in rows), dtype=np.float64, count=len(rows)),
        })


def _metric_row(run_id: int, index: int, row: Any) -> tuple[int, str, int, float]:
    """(run_id, name, step, value) for the INSERT; ValueError naming the row if it is malformed."""
    try:
        step, name, value = row
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        return run_id, name, operator.index(step), float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metric row {index} {row!r} is not (step: int, name: str, value: float): {exc}") from None
