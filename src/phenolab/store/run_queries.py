"""Queries over the runs of a store: listing with filters, config keys, experiment names,
summaries and children (a base of `Store`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from phenolab.store.connection import StoreConnection, _run_id
from phenolab.store.encoding import from_json, run_from_row
from phenolab.store.schema import RUN_STATUSES
from phenolab.store.summary import where_condition, where_terms


class RunQueries(StoreConnection):
    """Read-only queries over the runs (mixed into `Store`)."""

    def list_runs(
        self,
        *,
        name: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        parent_id: int | None = None,
        sweep_id: str | None = None,
        experiment: str | int | None = None,
        where: Mapping[str, Any] | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching every given filter, newest first, at most `limit`.

        `sweep_id`: the sweep's own run, its experiment runs and their training runs.
        `experiment`: training runs of an experiment, through their parent: a name (every run of
        that experiment) or an experiment run's id (its children and the runs its summary lists,
        which another point of a sweep may have trained). `where`: config fields, as a dict
        ``{"model.width": 100}`` or strings ``["model.width=100", "init.gamma=1.5"]``; numbers
        compare numerically (100 matches 100.0), strings exactly, lists as their JSON text.
        ValueError for a bad status or a malformed `where`.
        """
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        terms = where_terms(where)
        given = {"name": name, "kind": kind, "status": status, "parent_id": parent_id}
        clauses = [f"{column} = ?" for column, value in given.items() if value is not None]
        params: list[Any] = [value for value in given.values() if value is not None]
        if sweep_id is not None:
            clauses.append("(sweep_id = ? OR parent_id IN (SELECT id FROM runs WHERE sweep_id = ?))")
            params += [sweep_id, sweep_id]
        if terms:
            parts = [where_condition(key, value) for key, value in terms]
            clauses.append("id IN (" + " INTERSECT ".join(sql for sql, _ in parts) + ")")
            params += [p for _, values in parts for p in values]
        with (self._summarized() if terms else self._reading()) as conn:
            if isinstance(experiment, str) and not experiment.isdigit():
                clauses.append("parent_id IN (SELECT id FROM runs WHERE kind = 'experiment' AND name = ?)")
                params.append(experiment)
            elif experiment is not None:
                parent = int(experiment)
                listed = self._listed_runs(conn, parent)
                clauses.append(f"(parent_id = ? OR id IN ({', '.join('?' for _ in listed)}))" if listed
                               else "parent_id = ?")
                params += [parent, *listed]
            sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id DESC"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(int(limit))
            rows = conn.execute(sql, params).fetchall()
        return [run_from_row(dict(r)) for r in rows]

    @staticmethod
    def _listed_runs(conn: sqlite3.Connection, run_id: int) -> list[int]:
        """Run ids an experiment run's summary lists under ``runs`` (label -> id)."""
        row = conn.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
        summary = from_json(row[0]) if row is not None else None
        listed = summary.get("runs") if isinstance(summary, dict) else None
        if not isinstance(listed, dict):
            return []
        return sorted({v for v in listed.values() if isinstance(v, int) and not isinstance(v, bool)})

    def config_keys(self) -> list[str]:
        """Every config field path that some run has (e.g. 'model.width'), sorted."""
        with self._summarized() as conn:
            # a loose index scan: one index seek per distinct key, however many runs there are
            rows = conn.execute(
                "WITH RECURSIVE k(key) AS (SELECT MIN(key) FROM run_config UNION ALL "
                "SELECT (SELECT MIN(key) FROM run_config WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
                "SELECT key FROM k WHERE key IS NOT NULL"
            ).fetchall()
        return [r[0] for r in rows]

    def has_config_key(self, key: str) -> bool:
        """Whether some run has config field `key`."""
        with self._summarized() as conn:
            return conn.execute("SELECT 1 FROM run_config WHERE key = ? LIMIT 1", (key,)).fetchone() is not None

    def experiment_names(self) -> list[str]:
        """Names of the experiments that have runs of kind 'experiment' in the store, sorted."""
        with self._reading() as conn:
            rows = conn.execute("SELECT DISTINCT name FROM runs WHERE kind = 'experiment' ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def summaries(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The summary of each finished run among `run_ids` (running ones are left out): the
        run_summary columns, ``final`` {metric: value at its last step}, ``final_step`` {metric:
        that step} and ``checks`` [{name, measured, op, threshold, passed}] of a verdict."""
        ids = sorted({_run_id(i) for i in run_ids})
        result: dict[int, dict[str, Any]] = {}
        with self._summarized() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                for row in conn.execute(f"SELECT * FROM run_summary WHERE run_id IN ({marks})", chunk):
                    entry = dict(row)
                    if entry["passed"] is not None:
                        entry["passed"] = bool(entry["passed"])
                    result[entry["run_id"]] = {**entry, "final": {}, "final_step": {}, "checks": []}
                for row in conn.execute("SELECT run_id, name, step, value FROM run_final_metrics "
                                        f"WHERE run_id IN ({marks}) ORDER BY run_id, name", chunk):
                    entry = result[row[0]]
                    entry["final"][row[1]] = np.nan if row[3] is None else row[3]
                    entry["final_step"][row[1]] = row[2]
                for row in conn.execute("SELECT run_id, name, measured, op, threshold, passed FROM run_checks "
                                        f"WHERE run_id IN ({marks}) ORDER BY run_id, position", chunk):
                    result[row[0]]["checks"].append({
                        "name": row[1], "measured": row[2], "op": row[3], "threshold": row[4],
                        "passed": None if row[5] is None else bool(row[5])})
        return result

    def children(self, run_id: int) -> list[dict[str, Any]]:
        """Runs whose parent is `run_id`, in id order."""
        with self._reading() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE parent_id = ? ORDER BY id", (_run_id(run_id),)).fetchall()
        return [run_from_row(dict(r)) for r in rows]
