"""Files that are not usable stores raise one-line StoreErrors and are left exactly as they were."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from phenolab.store import Store, StoreError
from phenolab.store import sqlite as store_sqlite
from phenolab.store.schema import SCHEMA_VERSION


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for directories)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _refused(path: Path, *, readonly: bool = False) -> str:
    with pytest.raises(StoreError) as info:
        Store(path, readonly=readonly)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize(
    "content, expected",
    [
        (os.urandom(0) + bytes(range(256)) * 16, "not a SQLite database"),
        (b"run,loss\n1,0.5\n" * 20, "not a SQLite database"),
        (b"SQLite format 3\x00" + bytes(range(256)) * 16, "not a usable SQLite database"),
        (b"tiny", "not a SQLite database"),
    ],
    ids=["random-bytes", "text", "sqlite-header-then-garbage", "tiny"],
)
def test_non_database_files_are_refused_untouched(tmp_path: Path, content: bytes, expected: str,
                                                  readonly: bool) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(content)
    before = _snapshot(tmp_path)
    assert expected in _refused(path, readonly=readonly)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
@pytest.mark.parametrize("readonly", [False, True])
def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path, journal_mode: str, readonly: bool) -> None:
    path = tmp_path / "store.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    with conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")  # a 'meta' table that is not ours
        conn.execute("INSERT INTO users (email) VALUES ('a@b.c')")
    conn.close()
    before = _snapshot(tmp_path)
    assert set(before) == {"store.sqlite"}
    message = _refused(path, readonly=readonly)
    assert "not a phenolab store" in message and "users" in message
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("readonly", [False, True])
def test_newer_schema_is_refused_untouched(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "store.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    before = _snapshot(tmp_path)
    assert "schema version 99, newer" in _refused(path, readonly=readonly)
    assert _snapshot(tmp_path) == before


def test_directory_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    before = _snapshot(tmp_path)
    assert "is a directory" in _refused(tmp_path / "dir.sqlite")
    assert "is a directory" in _refused(tmp_path / "dir.sqlite", readonly=True)
    assert _snapshot(tmp_path) == before


def test_path_below_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory\n")
    before = _snapshot(tmp_path)
    message = _refused(tmp_path / "afile" / "store.sqlite")
    assert "afile is a file, not a directory" in message
    message = _refused(tmp_path / "afile" / "deeper" / "store.sqlite")
    assert "afile is a file, not a directory" in message
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "not writable" in _refused(locked / "store.sqlite")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_readonly_open_of_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "store.sqlite"
    assert _refused(path, readonly=True) == f"no phenolab store at {path}"
    assert list(tmp_path.iterdir()) == []


def test_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.touch()
    with Store(path) as st:
        st.create_run(kind="train", name="x", config={}, config_hash="h")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "runs", "metrics", "artifacts", "run_config", "run_summary", "run_final_metrics",
            "run_checks"} <= tables
    conn.close()


def test_locked_store_gives_a_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "store.sqlite"
    with Store(path) as st:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError) as info:
                st.create_run(kind="train", name="x", config={}, config_hash="h")
            assert "locked by another process" in str(info.value) and str(path) in str(info.value)
        finally:
            other.execute("ROLLBACK")
            other.close()
        run = st.create_run(kind="train", name="x", config={}, config_hash="h")
        assert st.get_run(run)["status"] == "running"
