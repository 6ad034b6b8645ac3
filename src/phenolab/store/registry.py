"""`Store`: the run registry, metric series and artifacts of one SQLite file and its directory.

Layout: ``<root>/phenolab.sqlite`` (or any name), arrays in ``<root>/artifacts/<run_id>/``,
figures and other files in ``<root>/runs/<run_id>/``. Every write is one short transaction.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from phenolab.store.connection import StoreConnection, _mark_owner_gone, _owned_here, _owner_gone, _passed, _run_id
from phenolab.store.encoding import from_json, iso, run_from_row, seconds_between, to_json, utc_now
from phenolab.store.errors import StoreError
from phenolab.store.liveness import hostname, process_start
from phenolab.store.metric_series import MetricSeries
from phenolab.store.run_files import FIGURE_DPI, RunFiles
from phenolab.store.run_queries import RunQueries
from phenolab.store.schema import FINAL_STATUSES
from phenolab.store.summary import insert_config, write_summary

__all__ = ["ANALYSIS_LIMIT", "FIGURE_DPI", "Store", "StoreConnection"]

# rows sampled per index by ANALYZE: statistics good enough for the planner at a bounded cost
ANALYSIS_LIMIT = 1000


@functools.lru_cache(maxsize=1)
def _phenolab_version() -> str | None:
    try:
        return metadata.version("phenolab")
    except metadata.PackageNotFoundError:
        return None


class Store(RunQueries, MetricSeries, RunFiles):
    """A phenolab store: open it, record runs into it, query it; usable as a context manager.

    ``Store(path)`` opens (creating if needed) the store at `path` (default
    `default_store_path()`) and marks runs whose process has died as 'interrupted'.
    ``Store(path, readonly=True)`` only reads and never changes anything.

    The methods live in its bases: `StoreConnection` (opening, transactions), `RunQueries`
    (listing and summaries), `MetricSeries` (metric rows) and `RunFiles` (artifacts, figures, pages).
    """

    def create_run(
        self,
        *,
        kind: str,
        name: str,
        config: Mapping[str, Any],
        config_hash: str,
        parent_id: int | None = None,
        sweep_id: str | None = None,
        label: str | None = None,
        code_version: str | None = None,
    ) -> int:
        """Register a new run with status 'running' and return its id.

        `code_version` names the source that produces the run's results (`phenolab.versioning`);
        `find_done` matches it, so a result of other code is not reused."""
        values = _new_run(kind, name, config, config_hash, parent_id, sweep_id, label, code_version)
        with self._writing() as conn:
            return self._insert_run(conn, values)

    def _insert_run(self, conn: sqlite3.Connection, values: dict[str, Any]) -> int:
        if values["parent_id"] is not None:
            self._require_run(conn, values["parent_id"])
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", tuple(values.values()))
        run_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        insert_config(conn, run_id, from_json(values["config"]))
        return run_id

    def claim_run(self, *, kind: str, name: str, config: Mapping[str, Any], config_hash: str,
                  code_version: str | None, parent_id: int | None = None, label: str | None = None,
                  sweep_id: str | None = None, reuse_done: bool = True) -> tuple[str, int]:
        """Claim a config hash before running it, in one write transaction, so that two drivers
        never run it twice. Returns ``("done", id)`` when a ``done`` run of that kind, name, hash
        and code version exists (only with `reuse_done`: an experiment or sweep run that its caller
        found stale is run again); ``("busy", id)`` when another live process holds a ``running``
        one (wait for it); else ``("claimed", id)`` of a new ``running`` run that this process owns.
        A ``running`` run whose owner is gone is marked ``interrupted`` and claimed anew."""
        version_sql = "code_version = ?" if code_version is not None else "code_version IS NULL"
        match = f"name = ? AND config_hash = ? AND kind = ? AND {version_sql}"
        params: list[Any] = [name, config_hash, kind] + ([code_version] if code_version is not None else [])
        values = _new_run(kind, name, config, config_hash, parent_id, sweep_id, label, code_version)
        with self._writing() as conn:
            done = conn.execute(f"SELECT id FROM runs WHERE {match} AND status = 'done' ORDER BY id DESC LIMIT 1",
                                params).fetchone()
            if done is not None and reuse_done:
                return "done", int(done["id"])
            now = utc_now()
            for r in conn.execute(f"SELECT * FROM runs WHERE {match} AND status = 'running' ORDER BY id",
                                  params).fetchall():
                if _owned_here(r):
                    continue  # this process's own run (an earlier, abandoned attempt): not a claim on it
                if _owner_gone(r, now):
                    _mark_owner_gone(conn, r)
                    continue
                return "busy", int(r["id"])
            return "claimed", self._insert_run(conn, values)

    def running_elsewhere(self, kind: str, name: str, config_hash: str) -> int | None:
        """Id of a ``running`` run of that kind, name and config hash that another live process
        owns (a driver running the same sweep), or None."""
        now = utc_now()
        with self._reading() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE name = ? AND config_hash = ? AND kind = ? "
                                "AND status = 'running' ORDER BY id", (name, config_hash, kind)).fetchall()
        return next((int(r["id"]) for r in rows if not _owned_here(r) and not _owner_gone(r, now)), None)

    def heartbeat(self, run_id: int) -> None:
        """Record that the run's process is alive now."""
        with self._writing() as conn:
            cursor = conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (iso(utc_now()), _run_id(run_id)))
            if cursor.rowcount == 0:
                raise StoreError(f"no run {run_id} in {self.path}")

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        error: str | None = None,
        summary: Mapping[str, Any] | None = None,
        verdict: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the final status (done, failed, diverged, interrupted), finish time and results."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
        passed = _passed(verdict)
        summary_json, verdict_json = to_json(summary), to_json(verdict)
        with self._writing() as conn:
            started = self._require_run(conn, run_id)["started"]
            now = iso(utc_now())
            conn.execute(
                "UPDATE runs SET status = ?, error = ?, summary = ?, verdict = ?, passed = ?, "
                "finished = ?, heartbeat = ?, duration_s = ? WHERE id = ?",
                (status, error, summary_json, verdict_json, passed, now, now,
                 seconds_between(started, now), _run_id(run_id)),
            )
            write_summary(conn, _run_id(run_id))

    def find_done(self, kind: str, name: str, config_hash: str, code_version: str | None = None) -> int | None:
        """Id of the newest 'done' run of that kind, name and config hash, or None.

        With `code_version`, only a run stored under that code version counts (a run stored
        without one, e.g. before schema 3, never does); without it, any code version."""
        sql = "SELECT id FROM runs WHERE name = ? AND config_hash = ? AND status = 'done' AND kind = ?"
        params: list[Any] = [name, config_hash, kind]
        if code_version is not None:
            if not self._has_code_version:
                return None  # a read-only older store: no run has a code version
            sql += " AND code_version = ?"
            params.append(code_version)
        with self._reading() as conn:
            row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return None if row is None else int(row["id"])

    def update_results(
        self,
        run_id: int,
        *,
        summary: Mapping[str, Any] | None,
        verdict: Mapping[str, Any] | None,
    ) -> None:
        """Replace a finished run's summary and verdict (an experiment judged again from its stored
        runs); its status, error and times stay. StoreError if the run is still running."""
        passed = _passed(verdict)
        summary_json, verdict_json = to_json(summary), to_json(verdict)
        with self._writing() as conn:
            if self._require_run(conn, run_id)["status"] == "running":
                raise StoreError(f"run {run_id} in {self.path} is still running; finish it first")
            conn.execute("UPDATE runs SET summary = ?, verdict = ?, passed = ? WHERE id = ?",
                         (summary_json, verdict_json, passed, _run_id(run_id)))
            write_summary(conn, _run_id(run_id))

    def get_run(self, run_id: int) -> dict[str, Any]:
        """Every column of the run; config, summary and verdict parsed from JSON."""
        with self._reading() as conn:
            return run_from_row(dict(self._require_run(conn, run_id)))

    # ------------------------------------------------------------------ maintenance
    def optimize(self) -> None:
        """Refresh the planner's statistics after bulk writes (the end of an experiment or sweep):
        ``ANALYZE`` on a sample of each index (``analysis_limit``, so it stays fast on millions of
        metric rows), then ``PRAGMA optimize``."""
        if self.readonly:
            raise StoreError(f"the store {self.path} is opened read-only")
        with self._reading() as conn:
            conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            conn.execute("ANALYZE")
            conn.execute("PRAGMA optimize")


def _new_run(kind: str, name: str, config: Mapping[str, Any], config_hash: str, parent_id: int | None,
             sweep_id: str | None, label: str | None, code_version: str | None) -> dict[str, Any]:
    """The row of a new ``running`` run owned by this process (checked arguments)."""
    for field, value in (("kind", kind), ("name", name), ("config_hash", config_hash)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    now = iso(utc_now())
    pid = os.getpid()
    return {
        "kind": kind, "name": name, "label": label, "parent_id": parent_id, "sweep_id": sweep_id,
        "status": "running", "config_hash": config_hash, "config": to_json(dict(config)),
        "started": now, "heartbeat": now, "pid": pid, "hostname": hostname(),
        "proc_start": process_start(pid), "phenolab_version": _phenolab_version(),
        "code_version": code_version,
    }
