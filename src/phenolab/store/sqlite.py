"""Opening the SQLite file safely: check what is at the path before anything can write to it.

A file that is not a phenolab store (random bytes, text, another program's database, a newer
schema) is only ever read, through SQLite's read-only URI, so it stays byte-for-byte unchanged.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from phenolab.store.errors import StoreError
from phenolab.store.schema import classify

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 10.0


def _wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _uri(path: Path, *, immutable: bool) -> str:
    uri = "file:" + quote(path.as_posix(), safe="/:") + "?mode=ro"
    return uri + "&immutable=1" if immutable else uri


def describe(exc: sqlite3.Error, path: Path) -> StoreError:
    """The StoreError for an error SQLite raised while using the store at `path`."""
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return StoreError(
            f"{path} is locked by another process (waited {BUSY_TIMEOUT_S:g} s); try again when it is done"
        )
    return StoreError(f"{path}: {text}")


@contextmanager
def translated_errors(path: Path) -> Iterator[None]:
    """Re-raise SQLite errors as one-line StoreErrors naming `path`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise describe(exc, path) from exc


def inspect_file(path: Path) -> str:
    """What is at `path`: ``"missing"``, ``"empty"`` (a file with no tables) or ``"store"``.

    Raises StoreError for a directory, an unreadable file, a file that is not SQLite, a foreign
    SQLite database or a newer schema. Never writes; a WAL database is read as immutable when
    no ``-wal`` file exists, so that no ``-wal``/``-shm`` files are left next to a foreign file.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"  # some parent is a file; reported when the parent directory is made
    except OSError as exc:
        raise StoreError(f"cannot access {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path} is a directory; give the path of the store's .sqlite file")
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path} is not a regular file, so it cannot be a phenolab store")
    if info.st_size == 0:
        return "empty"
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise StoreError(f"{path} is not a SQLite database (no SQLite header), so not a phenolab store; "
                         "not touching it")
    try:
        conn = sqlite3.connect(_uri(path, immutable=not _wal_path(path).exists()), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} read-only: {exc}") from None
    try:
        return classify(conn, path)
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise describe(exc, path) from None
        raise StoreError(f"{path} is not a usable SQLite database ({exc}); not touching it") from None
    finally:
        conn.close()


def ensure_parent_dir(path: Path) -> None:
    """Create the directory of `path` if needed; StoreError if that is impossible."""
    parent = path.parent
    if parent.is_dir():
        return
    blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise StoreError(f"cannot create the store {path}: {blocker} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory {parent} for the store {path}: {exc.strerror}") from None


def check_writable(path: Path, exists: bool) -> None:
    """StoreError unless the store file (if it exists) and its directory can be written."""
    if not os.access(path.parent, os.W_OK | os.X_OK):
        hint = "; open it with readonly=True to read it" if exists else ""
        raise StoreError(f"cannot write the store {path}: directory {path.parent} is not writable{hint}")
    if exists and not os.access(path, os.W_OK):
        raise StoreError(f"cannot write the store {path}: the file is not writable; "
                         "open it with readonly=True to read it")


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row


def connect_readwrite(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), foreign keys on."""
    return _connect(str(path), path, uri=False)


def enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch a verified store to WAL with synchronous=NORMAL (WAL persists in the file)."""
    with translated_errors(path):
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection through the ``mode=ro`` URI.

    If the store has no ``-wal`` file and its directory is not writable (a shared copy on
    read-only media), SQLite cannot create the WAL index, so the file is opened as immutable;
    nobody can be writing to it then.
    """
    immutable = not _wal_path(path).exists() and not os.access(path.parent, os.W_OK)
    return _connect(_uri(path, immutable=immutable), path, uri=True)


def _connect(target: str, path: Path, *, uri: bool) -> sqlite3.Connection:
    """Open `target` (a path or a URI) in autocommit mode and configure it; errors name `path`."""
    try:
        conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise describe(exc, path) from None
    try:
        with translated_errors(path):
            _configure(conn)
    except BaseException:
        conn.close()
        raise
    return conn
