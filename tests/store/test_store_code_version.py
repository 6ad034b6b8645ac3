"""Schema 3: each run's code version, matched by `find_done`; the upgrade of a schema-2 store; and
`update_results`, which replaces a finished run's summary and verdict."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from phenolab.store import Store, StoreError
from phenolab.store.schema import SCHEMA_VERSION


def table_rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(sql).fetchall(), key=repr)
    finally:
        conn.close()


def run_columns(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    finally:
        conn.close()


def test_find_done_matches_the_code_version(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        old = st.create_run(kind="train", name="x", config={"a": 1}, config_hash="h", code_version="v1")
        st.finish_run(old, "done")
        none = st.create_run(kind="train", name="x", config={"a": 1}, config_hash="h")
        st.finish_run(none, "done")
        assert st.get_run(old)["code_version"] == "v1" and st.get_run(none)["code_version"] is None
        assert st.find_done("train", "x", "h", "v1") == old
        assert st.find_done("train", "x", "h", "v2") is None
        assert st.find_done("train", "x", "h") == none  # no code version asked: any, newest first
        new = st.create_run(kind="train", name="x", config={"a": 1}, config_hash="h", code_version="v2")
        assert st.find_done("train", "x", "h", "v2") is None  # still running
        st.finish_run(new, "done")
        assert st.find_done("train", "x", "h", "v2") == new and st.find_done("train", "x", "h", "v1") == old


def make_v2_store(path: Path) -> tuple[int, int]:
    """A store of schema 2 (no runs.code_version) holding a finished training run and an experiment run."""
    with Store(path) as st:
        train = st.create_run(kind="train", name="x", config={"model": {"width": 8}}, config_hash="h")
        st.log_metrics(train, [(0, "loss", 1.0), (1, "loss", 0.5)])
        st.finish_run(train, "done", summary={"final_loss": 0.5})
        exp = st.create_run(kind="experiment", name="x", config={"seeds": [0]}, config_hash="e")
        st.finish_run(exp, "done", summary={"runs": {"seed=0": train}}, verdict={"passed": True, "checks": []})
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("ALTER TABLE runs DROP COLUMN code_version")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return train, exp


def test_a_schema_2_store_gains_the_column_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    train, exp = make_v2_store(path)
    assert "code_version" not in run_columns(path)
    before = table_rows(path, "SELECT * FROM runs")
    summaries = {t: table_rows(path, f"SELECT * FROM {t}") for t in ("run_config", "run_summary", "run_checks")}

    with Store(path, readonly=True) as st:  # read-only: works, writes nothing
        assert st.get_run(train)["code_version"] is None
        assert st.find_done("train", "x", "h") == train
        assert st.find_done("train", "x", "h", "anything") is None
        assert [r["id"] for r in st.list_runs(where={"model.width": 8})] == [train]
    assert "code_version" not in run_columns(path) and table_rows(path, "SELECT * FROM runs") == before
    assert dict(table_rows(path, "SELECT key, value FROM meta"))["schema_version"] == "2"

    with Store(path) as st:
        meta = dict(table_rows(path, "SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["upgraded_from"] == "2"
        assert run_columns(path)[-1] == "code_version"
        assert table_rows(path, "SELECT * FROM runs") == sorted((row + (None,) for row in before), key=repr)
        for table, rows in summaries.items():
            assert table_rows(path, f"SELECT * FROM {table}") == rows, table
        # an old row has no code version, so it is never reused by code version
        assert st.find_done("train", "x", "h") == train and st.find_done("train", "x", "h", "v") is None
        again = st.create_run(kind="train", name="x", config={"model": {"width": 8}}, config_hash="h", code_version="v")
        st.finish_run(again, "done")
        assert st.find_done("train", "x", "h", "v") == again
    with Store(path):  # opening again changes nothing
        pass
    assert dict(table_rows(path, "SELECT key, value FROM meta"))["upgraded_from"] == "2"


def test_update_results_replaces_summary_and_verdict_only(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        run = st.create_run(kind="experiment", name="x", config={}, config_hash="e")
        with pytest.raises(StoreError, match="still running"):
            st.update_results(run, summary={}, verdict={"passed": True})
        st.finish_run(run, "done", summary={"a": 1}, verdict={"passed": False, "checks": [
            {"name": "c", "measured": 1.0, "op": "<", "threshold": 0.5, "passed": False}]})
        first = st.get_run(run)
        st.update_results(run, summary={"a": 2}, verdict={"passed": True, "checks": [
            {"name": "d", "measured": 0.1, "op": "<", "threshold": 0.5, "passed": True}]})
        now = st.get_run(run)
        assert now["summary"] == {"a": 2} and now["passed"] is True and now["verdict"]["checks"][0]["name"] == "d"
        assert {k: now[k] for k in ("status", "finished", "duration_s", "error")} == {
            k: first[k] for k in ("status", "finished", "duration_s", "error")}
        s = st.summaries([run])[run]
        assert s["passed"] is True and [c["name"] for c in s["checks"]] == ["d"]
        with pytest.raises(ValueError, match="passed"):
            st.update_results(run, summary=None, verdict={"checks": []})
        with pytest.raises(StoreError, match="no run 999"):
            st.update_results(999, summary=None, verdict=None)
