"""The per-run summary tables: written when runs finish, equal to what they summarize, back-filled
into stores of schema 1, and the filters of `list_runs` / `load_runs` built on them."""

from __future__ import annotations

import math
import socket
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from phenolab.store import Store, StoreError, load_runs, load_summary
from phenolab.store.schema import SCHEMA_VERSION
from phenolab.store.summary import SUMMARY_TABLES, flatten_config

from fake_store import SWEEP_ID

# The tables of schema 1, as phenolab wrote them before the summary tables existed (frozen copy).
V1_DDL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL, label TEXT,
        parent_id INTEGER REFERENCES runs(id) ON DELETE SET NULL, sweep_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'diverged', 'interrupted')),
        passed INTEGER CHECK (passed IN (0, 1)), config_hash TEXT NOT NULL, config TEXT NOT NULL,
        summary TEXT, verdict TEXT, error TEXT, started TEXT NOT NULL, heartbeat TEXT, finished TEXT,
        duration_s REAL, pid INTEGER, hostname TEXT, proc_start TEXT, phenolab_version TEXT)""",
    "CREATE INDEX runs_by_name_hash_status ON runs (name, config_hash, status)",
    "CREATE INDEX runs_by_parent ON runs (parent_id)",
    "CREATE INDEX runs_by_status ON runs (status)",
    "CREATE INDEX runs_by_sweep ON runs (sweep_id)",
    """CREATE TABLE metrics (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL, step INTEGER NOT NULL, value REAL, PRIMARY KEY (run_id, name, step)) WITHOUT ROWID""",
    """CREATE TABLE artifacts (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('arrays', 'figure', 'file')), name TEXT NOT NULL, path TEXT NOT NULL,
        sha256 TEXT NOT NULL, size_bytes INTEGER NOT NULL, arrays TEXT, created TEXT NOT NULL,
        UNIQUE (run_id, kind, name))""",
)
V1_TABLES = ("meta", "runs", "metrics", "artifacts")
V1_RUN_COLUMNS = ("id, kind, name, label, parent_id, sweep_id, status, passed, config_hash, config, summary, verdict, "
                  "error, started, heartbeat, finished, duration_s, pid, hostname, proc_start, phenolab_version")


def table_rows(path: Path, table: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def expected_finals(st: Store, run_id: int) -> dict[str, tuple[int, float]]:
    m = st.metrics(run_id)
    last = m.sort_values("step").groupby("name").tail(1)
    return {n: (int(s), v) for n, s, v in zip(last["name"], last["step"], last["value"])}


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


# ------------------------------------------------------------------------------ the summary
def test_summary_matches_the_runs_and_metrics_it_summarizes(fake_sweep) -> None:
    path, ids = fake_sweep
    with Store(path, readonly=True) as st:
        runs = {r["id"]: r for r in st.list_runs()}
        summaries = st.summaries(runs)
        assert set(summaries) == set(runs)  # every run here finished
        for run_id, run in runs.items():
            s = summaries[run_id]
            assert (s["kind"], s["name"], s["status"], s["config_hash"], s["finished"], s["duration_s"]) == (
                run["kind"], run["name"], run["status"], run["config_hash"], run["finished"], run["duration_s"])
            assert s["passed"] == run["passed"]
            finals = expected_finals(st, run_id)
            assert set(s["final"]) == set(finals)
            for name, (step, value) in finals.items():
                assert s["final_step"][name] == step and same(s["final"][name], value)
            checks = (run["verdict"] or {}).get("checks", [])
            assert [c["name"] for c in s["checks"]] == [c["name"] for c in checks]
            for got, want in zip(s["checks"], checks):
                assert (got["measured"], got["op"], got["threshold"], got["passed"]) == (
                    want["measured"], want["op"], want["threshold"], want["passed"])
        # the experiment a run belongs to, and the sweep through its parent
        exp0, exp1 = ids["experiments"]
        train = summaries[ids["train"][(200, 0)]]
        assert (train["experiment"], train["experiment_id"], train["sweep_id"]) == ("toy", exp1, SWEEP_ID)
        assert (summaries[exp0]["experiment"], summaries[exp0]["experiment_id"]) == ("toy", exp0)
        assert summaries[ids["sweep"]]["experiment_id"] is None
        diverged = summaries[ids["train"][(200, 1)]]
        assert diverged["status"] == "diverged" and math.isnan(diverged["final"]["loss"])
        assert diverged["final_step"] == {"loss": 2, "frequency/rel_err_0": 2}


def test_running_runs_have_no_summary_until_they_finish(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        run = st.create_run(kind="train", name="x", config={"a": 1}, config_hash="h")
        st.log_metrics(run, [(0, "loss", 1.0), (5, "loss", 0.5)])
        assert st.summaries([run]) == {}
        assert st.list_runs(where={"a": 1})[0]["id"] == run  # config fields are there from the start
        st.finish_run(run, "done")
        assert st.summaries([run])[run]["final"] == {"loss": 0.5}
        st.log_metrics(run, [(9, "loss", 0.25), (9, "acc", 0.9)])  # logged after finishing: refreshed
        assert st.summaries([run])[run]["final"] == {"loss": 0.25, "acc": 0.9}
        st.finish_run(run, "failed", error="changed its mind", verdict={"passed": False, "checks": [
            {"name": "c", "measured": 1.0, "op": "<", "threshold": 0.5, "passed": False}]})
        s = st.summaries([run])[run]
        assert s["status"] == "failed" and s["passed"] is False and [c["name"] for c in s["checks"]] == ["c"]


def test_a_run_marked_interrupted_gets_its_summary(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        run = st.create_run(kind="train", name="x", config={}, config_hash="h")
        st.log_metrics(run, [(0, "loss", 1.0), (1, "loss", 0.5)])
    long_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(timespec="microseconds")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET hostname = ?, heartbeat = ?, started = ? WHERE id = ?",
                     (socket.gethostname() + "-elsewhere", long_ago, long_ago, run))
    conn.close()
    with Store(path) as st:
        s = st.summaries([run])[run]
        assert s["status"] == "interrupted" and s["final"] == {"loss": 0.5}


def test_flatten_config_paths_and_values() -> None:
    flat = flatten_config({"model": {"width": 100, "init": {"std": [0.1, 1.0]}, "depth": None, "bias": True},
                           "probes": [{"name": "loss", "options": {}}], "seeds": [0, 1], "empty": {}})
    assert flat == {"model.width": 100, "model.init.std": "[0.1,1]", "model.depth": None, "model.bias": True,
                    "probes.0.name": "loss", "seeds": "[0,1]"}


# ------------------------------------------------------------------------------ migration
def make_v1_store(path: Path, source: Path) -> None:
    """A store of schema 1 holding the runs, metrics and artifacts of `source`."""
    conn = sqlite3.connect(path)
    with conn:
        for statement in V1_DDL:
            conn.execute(statement)
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        for table in V1_TABLES:
            columns = V1_RUN_COLUMNS if table == "runs" else "*"
            conn.execute(f"INSERT INTO {table} SELECT {columns} FROM src.{table}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute("DETACH DATABASE src")
    conn.execute(f"PRAGMA application_id = {0x70686E6C}")
    conn.close()


def test_old_store_is_upgraded_and_back_filled_losing_nothing(fake_sweep, tmp_path: Path) -> None:
    source, ids = fake_sweep
    with Store(source) as st:  # a run still running, and one of a user's own loop
        running = st.create_run(kind="train", name="toy", config={"model": {"width": 100}}, config_hash="r")
        st.log_metrics(running, [(0, "loss", 3.0)])
    old = tmp_path / "old.sqlite"
    make_v1_store(old, source)
    before = {t: table_rows(old, t) for t in ("runs", "metrics", "artifacts")}

    with Store(old, readonly=True) as st:  # read-only: works from temporary tables, file untouched
        assert {r["id"] for r in st.list_runs(where={"model.width": 100})} == {
            ids["experiments"][0], ids["train"][(100, 0)], ids["train"][(100, 1)], running}
        assert st.summaries([ids["reference"]])[ids["reference"]]["final"] == {"loss": 0.5}
    assert table_rows(old, "meta") == sorted([("application", "phenolab"), ("schema_version", "1"),
                                              ("created", dict(table_rows(source, "meta"))["created"])], key=repr)

    with Store(old) as st:
        assert st.list_runs(status="running")[0]["id"] == running  # nothing else changed on opening
    meta = dict(table_rows(old, "meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["upgraded_from"] == "1"
    before["runs"] = sorted((row + (None,) for row in before["runs"]), key=repr)  # code_version: NULL
    for table, rows in before.items():
        assert table_rows(old, table) == rows, table
    for table in SUMMARY_TABLES:  # back-filled exactly as the runs wrote them while they ran
        assert table_rows(old, table) == table_rows(source, table), table
    with Store(old) as st:  # opening again changes nothing
        pass
    assert dict(table_rows(old, "meta"))["upgraded_from"] == "1"


@pytest.mark.parametrize("readonly", [False, True])
def test_a_newer_schema_is_still_refused_untouched(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        Store(path, readonly=readonly)
    assert path.read_bytes() == before


def test_optimize_gathers_planner_statistics(fake_sweep) -> None:
    path, _ = fake_sweep
    with Store(path) as st:
        st.optimize()
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}
    conn.close()
    assert {"runs", "run_config"} <= names


# ------------------------------------------------------------------------------ filters
def test_where_compares_numbers_numerically_and_strings_exactly(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        def run(config: dict) -> int:
            return st.create_run(kind="train", name="x", config=config, config_hash=str(config))

        as_int = run({"model": {"width": 100, "act": "relu"}, "lr": 0.3})
        as_float = run({"model": {"width": 100.0, "act": "tanh"}, "lr": 0.1 * 3})
        as_text = run({"model": {"width": "100", "act": "relu"}, "flag": True})
        other = run({"model": {"width": 200, "act": "relu"}, "flag": False, "list": [1.0, 2], "none": None})

        def ids(**kw) -> set[int]:
            return {r["id"] for r in st.list_runs(**kw)}

        assert ids(where={"model.width": 100}) == {as_int, as_float}
        assert ids(where=["model.width=100"]) == {as_int, as_float}
        assert ids(where=["model.width=100.0"]) == {as_int, as_float}
        assert ids(where=["model.width='100'"]) == {as_text}
        assert ids(where={"model.width": "100"}) == {as_text}
        assert ids(where=["model.width=100", "model.act=relu"]) == {as_int}
        assert ids(where=["lr=0.3"]) == {as_int, as_float}  # 0.1 * 3 is 0.30000000000000004
        assert ids(where=["flag=true"]) == {as_text} and ids(where={"flag": False}) == {other}
        assert ids(where=["list=[1, 2]"]) == {other} and ids(where=["none=null"]) == {other}
        assert ids(where=["model.act=RELU"]) == set() and ids(where=["nosuch=1"]) == set()
        assert ids(where=["model.width=100"], limit=1) == {as_float}  # newest first
        for bad in (["model.width"], ["=3"], ["model..width=3"], ["model.width="]):
            with pytest.raises(ValueError, match="PATH=VALUE"):
                st.list_runs(where=bad)


def test_sweep_experiment_and_where_filters_pick_exactly_the_right_runs(fake_sweep) -> None:
    path, ids = fake_sweep
    exp0, exp1 = ids["experiments"]
    t = ids["train"]
    with Store(path, readonly=True) as st:
        def got(**kw) -> set[int]:
            return {r["id"] for r in st.list_runs(**kw)}

        trains = {ids["reference"], *t.values()}
        assert got(sweep_id=SWEEP_ID) == {ids["sweep"], exp0, exp1, *trains}
        assert got(sweep_id=SWEEP_ID, kind="train") == trains
        assert got(sweep_id="nope") == set()
        assert got(experiment="toy") == trains
        assert got(experiment="nope") == set()
        assert got(experiment=exp1) == {t[(200, 0)], t[(200, 1)], ids["reference"]}  # the reused run too
        assert got(experiment=str(exp0)) == {t[(100, 0)], t[(100, 1)], ids["reference"]}
        assert got(experiment="toy", where=["model.width=200", "seed=1"]) == {t[(200, 1)]}
        assert got(experiment="toy", status="diverged") == {t[(200, 1)]}
        assert got(where={"model.init.gamma": 1.5, "train.lr": 0.2}) == {t[(100, 1)], t[(200, 1)]}
        assert got(where=["model.width=200"], kind="experiment") == {exp1}
        frame = load_runs(st, experiment="toy", where=["model.width=100"])
        assert sorted(frame["id"]) == sorted([t[(100, 0)], t[(100, 1)]])
    frame = load_runs(path, where={"seed": 0}, kind="train")  # a path: opened read-only
    assert set(frame["id"]) == {ids["reference"], t[(100, 0)], t[(200, 0)]}


def test_load_summary_is_one_flat_row_per_finished_run(fake_sweep) -> None:
    path, ids = fake_sweep
    frame = load_summary(path, kind="experiment")
    assert list(frame["id"]) == ids["experiments"][::-1]
    assert list(frame["check.ratio"]) == [4.0, 2.0] and list(frame["check.ratio.passed"]) == [True, False]
    assert list(frame["passed"]) == [True, False] and list(frame["config.model.width"]) == [200, 100]
    trains = load_summary(path, experiment="toy", where=["seed=1"]).set_index("id")
    t = ids["train"]
    assert trains.loc[t[(100, 1)], "final.loss"] == pytest.approx(1 / (2 + 1 + 1 + 1))
    assert math.isnan(trains.loc[t[(200, 1)], "final.loss"])
    assert trains.loc[t[(200, 1)], "experiment_id"] == ids["experiments"][1]
    assert isinstance(trains, pd.DataFrame) and len(trains) == 2
