"""`Store`: the run registry, metric series and artifacts of one SQLite file and its directory.

Layout: ``<root>/phenolab.sqlite`` (or any name), arrays in ``<root>/artifacts/<run_id>/``,
figures and other files in ``<root>/runs/<run_id>/``. Every write is one short transaction.
"""

from __future__ import annotations

import functools
import operator
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phenolab.store import sqlite as db
from phenolab.store.artifacts import (
    array_info,
    checked_arrays,
    read_npz,
    safe_file_name,
    sha256_file,
    write_atomic,
    write_npz,
)
from phenolab.store.encoding import from_json, iso, run_from_row, seconds_between, to_json, utc_now
from phenolab.store.errors import StoreError
from phenolab.store.liveness import hostname, owner_gone, process_start
from phenolab.store.paths import default_store_path
from phenolab.store.schema import (
    FINAL_STATUSES,
    RUN_STATUSES,
    classify,
    create_schema,
    stored_version,
    temporary_summary,
    upgrade,
)
from phenolab.store.summary import (
    insert_config,
    refresh_final_metrics,
    where_condition,
    where_terms,
    write_summary,
)

FIGURE_DPI = 110
# rows sampled per index by ANALYZE: statistics good enough for the planner at a bounded cost
ANALYSIS_LIMIT = 1000


@functools.lru_cache(maxsize=1)
def _phenolab_version() -> str | None:
    try:
        return metadata.version("phenolab")
    except metadata.PackageNotFoundError:
        return None


class Store:
    """A phenolab store: open it, record runs into it, query it; usable as a context manager.

    ``Store(path)`` opens (creating if needed) the store at `path` (default
    `default_store_path()`) and marks runs whose process has died as 'interrupted'.
    ``Store(path, readonly=True)`` only reads and never changes anything.
    """

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path: Path = Path(default_store_path() if path is None else path).expanduser().absolute()
        self.root: Path = self.path.parent
        self.readonly = readonly
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        self._summary_missing = False  # a read-only older store: summary tables still to build in TEMP
        self._has_code_version = True  # False for a read-only store older than schema 3 (no such column)
        self._conn = self._open_readonly() if readonly else self._open_readwrite()
        if not readonly:
            try:
                self._mark_interrupted()
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------------ opening
    def _open_readonly(self) -> sqlite3.Connection:
        state = db.inspect_file(self.path)
        if state != "store":
            detail = " (the file is empty)" if state == "empty" else ""
            raise StoreError(f"no phenolab store at {self.path}{detail}")
        conn = db.connect_readonly(self.path)
        try:
            with db.translated_errors(self.path):
                version = stored_version(conn)
                self._summary_missing = version < 2
                self._has_code_version = version >= 3
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _summarized(self) -> Iterator[sqlite3.Connection]:
        """`_reading`, with the summary tables there: a read-only older store gets them as TEMP
        tables built from its runs on the first query that needs them (the file is untouched)."""
        with self._reading() as conn:
            if self._summary_missing:
                temporary_summary(conn)
                self._summary_missing = False
            yield conn

    def _open_readwrite(self) -> sqlite3.Connection:
        state = db.inspect_file(self.path)
        if state == "missing":
            db.ensure_parent_dir(self.path)
        db.check_writable(self.path, exists=state != "missing")
        conn = db.connect_readwrite(self.path)
        try:
            if state != "store":
                self._initialize(conn)
            db.enable_wal(conn, self.path)
            with db.translated_errors(self.path):
                upgrade(conn, self.path)  # an older store gains the summary tables, back-filled
        except BaseException:
            conn.close()
            raise
        return conn

    def _initialize(self, conn: sqlite3.Connection) -> None:
        """Create the schema, re-checking under the write lock that the file is still empty."""
        with db.translated_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if classify(conn, self.path) == "empty":
                    create_schema(conn, iso(utc_now()))
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise

    def _mark_interrupted(self) -> None:
        """Mark 'running' runs whose process has ended as 'interrupted' (read first, write only if needed)."""
        now = utc_now()
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, pid, hostname, proc_start, started, heartbeat FROM runs WHERE status = 'running'"
            ).fetchall()
        gone = [
            r for r in rows
            if owner_gone(pid=r["pid"], host=r["hostname"], proc_start=r["proc_start"],
                          last_seen=r["heartbeat"] or r["started"], now=now)
        ]
        if not gone:
            return
        with self._writing() as conn:
            for r in gone:
                ended = r["heartbeat"] or r["started"]
                cursor = conn.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?, finished = ?, duration_s = ? "
                    "WHERE id = ? AND status = 'running'",
                    (f"process {r['pid']} on {r['hostname']} ended without finishing the run",
                     ended, seconds_between(r["started"], ended), r["id"]),
                )
                if cursor.rowcount:
                    write_summary(conn, r["id"])

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, readonly={self.readonly})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        if os.getpid() != self._pid:
            raise StoreError(
                f"the store {self.path} was opened in process {self._pid} and used in forked process "
                f"{os.getpid()}; open a new Store in each process"
            )
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, db.translated_errors(self.path):
            yield self._connection()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE, so a busy store waits up to the busy timeout)."""
        if self.readonly:
            raise StoreError(f"the store {self.path} is opened read-only")
        with self._lock, db.translated_errors(self.path):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    def _require_run(self, conn: sqlite3.Connection, run_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (_run_id(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        return row

    # ------------------------------------------------------------------ runs
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
        run_id = int(cursor.lastrowid)
        insert_config(conn, run_id, from_json(values["config"]))
        return run_id

    def claim_run(self, *, kind: str, name: str, config: Mapping[str, Any], config_hash: str,
                  code_version: str | None, parent_id: int | None = None, label: str | None = None,
                  sweep_id: str | None = None) -> tuple[str, int]:
        """Claim a config hash before training it, in one write transaction, so that two drivers
        never train it twice. Returns ``("done", id)`` when a ``done`` run of that kind, name, hash
        and code version exists; ``("busy", id)`` when another live process holds a ``running`` one
        (wait for it); else ``("claimed", id)`` of a new ``running`` run that this process owns. A
        ``running`` run whose owner is gone is marked ``interrupted`` and claimed anew."""
        version_sql = "code_version = ?" if code_version is not None else "code_version IS NULL"
        match = f"name = ? AND config_hash = ? AND kind = ? AND {version_sql}"
        params: list[Any] = [name, config_hash, kind] + ([code_version] if code_version is not None else [])
        me = (os.getpid(), hostname(), process_start(os.getpid()))
        values = _new_run(kind, name, config, config_hash, parent_id, sweep_id, label, code_version)
        with self._writing() as conn:
            done = conn.execute(f"SELECT id FROM runs WHERE {match} AND status = 'done' ORDER BY id DESC LIMIT 1",
                                params).fetchone()
            if done is not None:
                return "done", int(done["id"])
            now = utc_now()
            for r in conn.execute(f"SELECT * FROM runs WHERE {match} AND status = 'running' ORDER BY id", params):
                if (r["pid"], r["hostname"], r["proc_start"]) == me:
                    continue  # this process's own run (an earlier, abandoned attempt): not a claim on it
                if owner_gone(pid=r["pid"], host=r["hostname"], proc_start=r["proc_start"],
                              last_seen=r["heartbeat"] or r["started"], now=now):
                    ended = r["heartbeat"] or r["started"]
                    conn.execute("UPDATE runs SET status = 'interrupted', error = ?, finished = ?, duration_s = ? "
                                 "WHERE id = ?", (f"process {r['pid']} on {r['hostname']} ended without finishing "
                                                  "the run", ended, seconds_between(r["started"], ended), r["id"]))
                    write_summary(conn, r["id"])
                    continue
                return "busy", int(r["id"])
            return "claimed", self._insert_run(conn, values)

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
        passed = None
        if verdict is not None:
            if not isinstance(verdict, Mapping) or "passed" not in verdict:
                raise ValueError("verdict must be a dict with at least a 'passed' key")
            passed = int(bool(verdict["passed"]))
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
        passed = None
        if verdict is not None:
            if not isinstance(verdict, Mapping) or "passed" not in verdict:
                raise ValueError("verdict must be a dict with at least a 'passed' key")
            passed = int(bool(verdict["passed"]))
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

    # ------------------------------------------------------------------ metrics
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

    # ------------------------------------------------------------------ artifacts
    def save_artifact(self, run_id: int, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Save `arrays` as one uncompressed .npz; replaces an earlier artifact of that name."""
        checked = checked_arrays(arrays)
        rel = Path("artifacts", str(_run_id(run_id)), safe_file_name(name, ".npz"))
        return self._save_file(run_id, name, "arrays", rel, lambda f: write_npz(f, checked), array_info(checked))

    def load_artifact(self, run_id: int, name: str, *, verify: bool = True) -> dict[str, np.ndarray]:
        """The arrays saved under `name`; StoreError if missing or (with `verify`) changed on disk."""
        with self._reading() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(
                "SELECT path, sha256 FROM artifacts WHERE run_id = ? AND kind = 'arrays' AND name = ?",
                (_run_id(run_id), name),
            ).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} has no artifact {name!r} in {self.path}")
        file = self.root / row["path"]
        if not file.is_file():
            raise StoreError(f"artifact {name!r} of run {run_id}: file {file} is missing")
        if verify and sha256_file(file) != row["sha256"]:
            raise StoreError(f"artifact {name!r} of run {run_id}: checksum mismatch in {file} (the file changed after it was saved)")
        return read_npz(file)

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        """The run's artifacts: name, kind, path (relative to root), sha256, size_bytes, arrays, created."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT name, kind, path, sha256, size_bytes, arrays, created FROM artifacts "
                "WHERE run_id = ? ORDER BY id",
                (_run_id(run_id),),
            ).fetchall()
        return [{**dict(r), "arrays": from_json(r["arrays"])} for r in rows]

    def save_figure(self, run_id: int, name: str, fig: Any) -> Path:
        """Save a matplotlib Figure as ``runs/<run_id>/<name>.png`` (dpi 110)."""
        rel = Path("runs", str(_run_id(run_id)), safe_file_name(name, ".png"))
        return self._save_file(run_id, name, "figure", rel, lambda f: fig.savefig(f, format="png", dpi=FIGURE_DPI))

    def save_text(self, run_id: int, name: str, text: str) -> Path:
        """Save `text` (UTF-8) as ``runs/<run_id>/<name>``, e.g. 'report.html'."""
        data = text.encode("utf-8")
        rel = Path("runs", str(_run_id(run_id)), safe_file_name(name))
        return self._save_file(run_id, name, "file", rel, lambda f: f.write(data))

    def save_page(self, name: str, text: str) -> Path:
        """Save `text` (UTF-8) as ``<root>/<name>``, a page about the whole store (e.g. 'index.html'); not recorded."""
        if self.readonly:
            raise StoreError(f"the store {self.path} is opened read-only")
        dest = self.root / safe_file_name(name)
        data = text.encode("utf-8")
        write_atomic(dest, lambda f: f.write(data))
        return dest

    def run_dir(self, run_id: int) -> Path:
        """``<root>/runs/<run_id>``, created unless the store is read-only."""
        with self._reading() as conn:
            self._require_run(conn, run_id)
        path = self.root / "runs" / str(_run_id(run_id))
        if not self.readonly:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def _save_file(self, run_id: int, name: str, kind: str, rel: Path, write: Any,
                   arrays: dict[str, Any] | None = None) -> Path:
        if self.readonly:
            raise StoreError(f"the store {self.path} is opened read-only")
        with self._reading() as conn:
            self._require_run(conn, run_id)
        dest = self.root / rel
        digest, size = write_atomic(dest, write)
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO artifacts (run_id, kind, name, path, sha256, size_bytes, arrays, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, kind, name) DO UPDATE SET "
                "path = excluded.path, sha256 = excluded.sha256, size_bytes = excluded.size_bytes, "
                "arrays = excluded.arrays, created = excluded.created",
                (_run_id(run_id), kind, name, rel.as_posix(), digest, size, to_json(arrays), iso(utc_now())),
            )
        return dest

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


def _run_id(run_id: int) -> int:
    try:
        return operator.index(run_id)
    except TypeError:
        raise TypeError(f"run id must be an integer, got {run_id!r}") from None


def _metric_row(run_id: int, index: int, row: Any) -> tuple[int, str, int, float]:
    """(run_id, name, step, value) for the INSERT; ValueError naming the row if it is malformed."""
    try:
        step, name, value = row
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        return run_id, name, operator.index(step), float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metric row {index} {row!r} is not (step: int, name: str, value: float): {exc}") from None
