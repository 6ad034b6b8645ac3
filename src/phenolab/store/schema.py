"""The store's tables, their version, and how to create them or tell a store from another file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from phenolab.store.errors import StoreError
from phenolab.store.summary import backfill, summary_ddl

# 1: runs, metrics, artifacts. 2: the summary tables (run_config, run_summary, run_final_metrics,
# run_checks; see summary.py), created and back-filled when a version-1 store is opened to write.
# 3: runs.code_version (`phenolab.versioning`: the source that produced a training or measurement
# run), added as NULL to the rows of an older store opened to write; a NULL run is never reused.
SCHEMA_VERSION = 3
APPLICATION = "phenolab"
# Written to the SQLite header (offset 68) as a second marker; "phnl" in ASCII.
APPLICATION_ID = 0x70686E6C

RUN_STATUSES = ("running", "done", "failed", "diverged", "interrupted")
FINAL_STATUSES = RUN_STATUSES[1:]
ARTIFACT_KINDS = ("arrays", "figure", "file")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    f"""CREATE TABLE IF NOT EXISTS runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        kind             TEXT NOT NULL,
        name             TEXT NOT NULL,
        label            TEXT,
        parent_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        sweep_id         TEXT,
        status           TEXT NOT NULL CHECK (status IN ({_quoted(RUN_STATUSES)})),
        passed           INTEGER CHECK (passed IN (0, 1)),
        config_hash      TEXT NOT NULL,
        config           TEXT NOT NULL,
        summary          TEXT,
        verdict          TEXT,
        error            TEXT,
        started          TEXT NOT NULL,
        heartbeat        TEXT,
        finished         TEXT,
        duration_s       REAL,
        pid              INTEGER,
        hostname         TEXT,
        proc_start       TEXT,
        phenolab_version TEXT,
        code_version     TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_name_hash_status ON runs (name, config_hash, status)",
    "CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_id)",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status)",
    "CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep_id)",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name   TEXT NOT NULL,
        step   INTEGER NOT NULL,
        value  REAL,
        PRIMARY KEY (run_id, name, step)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE IF NOT EXISTS artifacts (
        id         INTEGER PRIMARY KEY,
        run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind       TEXT NOT NULL CHECK (kind IN ({_quoted(ARTIFACT_KINDS)})),
        name       TEXT NOT NULL,
        path       TEXT NOT NULL,
        sha256     TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        arrays     TEXT,
        created    TEXT NOT NULL,
        UNIQUE (run_id, kind, name)
    )""",
    *summary_ddl(),
)


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """Names of the tables in the database, SQLite's internal ones left out."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def classify(conn: sqlite3.Connection, path: Path) -> str:
    """``"empty"`` (no tables yet) or ``"store"`` (a phenolab store this code can use).

    Raises StoreError for a database of some other application or a newer schema. Only reads.
    """
    tables = user_tables(conn)
    if not tables:
        return "empty"
    foreign = (
        f"{path} is a SQLite database but not a phenolab store "
        f"(tables: {', '.join(tables[:6])}{', ...' if len(tables) > 6 else ''}); not touching it"
    )
    if "meta" not in tables:
        raise StoreError(foreign)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        raise StoreError(foreign) from None
    if meta.get("application") != APPLICATION:
        raise StoreError(foreign)
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise StoreError(f"{path}: phenolab store with an unreadable schema version "
                         f"{meta.get('schema_version')!r}") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} is a phenolab store of schema version {version}, newer than this phenolab "
            f"understands ({SCHEMA_VERSION}); upgrade phenolab to use it"
        )
    if version < 1:
        raise StoreError(f"{path}: phenolab store with an invalid schema version {version}")
    return "store"


def stored_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in `meta` (of a store `classify` accepted)."""
    row = conn.execute("SELECT value FROM main.meta WHERE key = 'schema_version'").fetchone()
    return int(row[0])


def upgrade(conn: sqlite3.Connection, path: Path) -> bool:
    """Bring an older store up to `SCHEMA_VERSION` in one write transaction; True if it changed.

    Re-reads the version under the write lock, so that two processes opening the same old store
    upgrade it once. Adds tables and columns only: nothing that was stored is changed or dropped.
    """
    if stored_version(conn) >= SCHEMA_VERSION:
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        classify(conn, path)  # still ours and not newer, now that the file is locked
        version = stored_version(conn)
        if version < 2:
            for statement in summary_ddl():
                conn.execute(statement)
            backfill(conn)
        if version < 3:
            conn.execute("ALTER TABLE runs ADD COLUMN code_version TEXT")  # NULL: never reused
        if version < SCHEMA_VERSION:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('upgraded_from', ?)", (str(version),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return version < SCHEMA_VERSION


def temporary_summary(conn: sqlite3.Connection) -> None:
    """On a read-only connection to an older store: the summary tables as TEMP tables, filled from
    its runs, so that queries work unchanged; the file itself is never written. The caller decides
    when (`Store` does it on the first query that needs them)."""
    conn.execute("BEGIN")
    try:
        for statement in summary_ddl("temp", references=False):
            conn.execute(statement)
        backfill(conn, "temp")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def create_schema(conn: sqlite3.Connection, created: str) -> None:
    """Create every table and index and the `meta` rows; call inside a write transaction."""
    for statement in DDL:
        conn.execute(statement)
    conn.executemany(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
        [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION)), ("created", created)],
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
