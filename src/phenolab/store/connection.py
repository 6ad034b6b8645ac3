"""`StoreConnection`: the base of `Store`: opening the SQLite file (read-only or read-write,
creating or upgrading the schema, marking runs of dead processes interrupted), the connection
and its read and write transactions."""

from __future__ import annotations

import operator
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from phenolab.store import sqlite as db
from phenolab.store.encoding import iso, seconds_between, utc_now
from phenolab.store.errors import StoreError
from phenolab.store.liveness import hostname, owner_gone, process_start
from phenolab.store.paths import default_store_path
from phenolab.store.schema import classify, create_schema, stored_version, temporary_summary, upgrade
from phenolab.store.summary import write_summary

_S = TypeVar("_S", bound="StoreConnection")


class StoreConnection:
    """The open store: its path, root folder, lock and connection; `Store` adds the runs, queries,
    metric series and files."""

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
        gone = [r for r in rows if _owner_gone(r, now)]
        if not gone:
            return
        with self._writing() as conn:
            for r in gone:
                _mark_owner_gone(conn, r)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self: _S) -> _S:
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


def _run_id(run_id: int) -> int:
    try:
        return operator.index(run_id)
    except TypeError:
        raise TypeError(f"run id must be an integer, got {run_id!r}") from None


def _owner_gone(row: sqlite3.Row, now: datetime) -> bool:
    """Whether the process that owns the ``running`` run `row` has ended (`liveness.owner_gone`)."""
    return owner_gone(pid=row["pid"], host=row["hostname"], proc_start=row["proc_start"],
                      last_seen=row["heartbeat"] or row["started"], now=now)


def _owned_here(row: sqlite3.Row) -> bool:
    """Whether this process owns the run `row` (pid, host and process start time)."""
    return (row["pid"], row["hostname"], row["proc_start"]) == (os.getpid(), hostname(), process_start(os.getpid()))


def _mark_owner_gone(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
    """Close the ``running`` run `row`, whose process has ended, as ``interrupted`` at its last sign of life."""
    ended = row["heartbeat"] or row["started"]
    cursor = conn.execute(
        "UPDATE runs SET status = 'interrupted', error = ?, finished = ?, duration_s = ? "
        "WHERE id = ? AND status = 'running'",
        (f"process {row['pid']} on {row['hostname']} ended without finishing the run",
         ended, seconds_between(row["started"], ended), row["id"]),
    )
    if cursor.rowcount:
        write_summary(conn, row["id"])


def _passed(verdict: Mapping[str, Any] | None) -> int | None:
    """The ``passed`` column of a verdict (1, 0, or None without one); ValueError for a verdict without ``passed``."""
    if verdict is None:
        return None
    if not isinstance(verdict, Mapping) or "passed" not in verdict:
        raise ValueError("verdict must be a dict with at least a 'passed' key")
    return int(bool(verdict["passed"]))
