"""Run registry: create/finish/get/list/children, find_done, readonly, default path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from phenolab.store import RUN_STATUSES, Store, StoreError, default_store_path, load_runs


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "runs" / "phenolab.sqlite") as st:
        yield st


def _run(st: Store, name: str = "mlp", config_hash: str = "h1", **kw) -> int:
    return st.create_run(kind=kw.pop("kind", "train"), name=name, config={"width": 8, "lr": 0.1},
                         config_hash=config_hash, **kw)


def test_create_finish_get_round_trip(store: Store) -> None:
    run = _run(store, label="seed=0", sweep_id="sw1")
    fresh = store.get_run(run)
    assert fresh["status"] == "running" and fresh["finished"] is None and fresh["passed"] is None
    assert fresh["config"] == {"width": 8, "lr": 0.1}
    assert fresh["pid"] > 0 and fresh["hostname"] and fresh["started"].endswith("+00:00")

    store.finish_run(run, "done", summary={"final_loss": 0.25}, verdict={"passed": False, "reason": "too slow"})
    done = store.get_run(run)
    assert done["status"] == "done"
    assert done["summary"] == {"final_loss": 0.25}
    assert done["verdict"] == {"passed": False, "reason": "too slow"}
    assert done["passed"] is False
    assert done["finished"] >= done["started"] and done["duration_s"] >= 0
    assert (done["label"], done["sweep_id"], done["kind"], done["name"]) == ("seed=0", "sw1", "train", "mlp")


def test_finish_run_rejects_bad_status_and_verdict(store: Store) -> None:
    run = _run(store)
    with pytest.raises(ValueError, match="status must be one of"):
        store.finish_run(run, "running")
    with pytest.raises(ValueError, match="passed"):
        store.finish_run(run, "done", verdict={"reason": "no passed key"})
    assert store.get_run(run)["status"] == "running"
    store.finish_run(run, "failed", error="boom")
    assert store.get_run(run)["error"] == "boom"


def test_unknown_run_is_a_one_line_store_error(store: Store) -> None:
    with pytest.raises(StoreError) as info:
        store.get_run(999)
    assert str(info.value) == f"no run 999 in {store.path}"
    with pytest.raises(StoreError, match="no run 999"):
        store.heartbeat(999)
    with pytest.raises(StoreError, match="no run 999"):
        store.finish_run(999, "done")
    with pytest.raises(StoreError, match="no run 999"):
        _run(store, parent_id=999)


def test_list_runs_filters_newest_first_and_children(store: Store) -> None:
    parent = _run(store, name="exp", kind="experiment")
    kids = [_run(store, parent_id=parent, label=f"seed={i}", sweep_id="sw") for i in range(3)]
    other = _run(store, name="other")
    store.finish_run(kids[1], "failed")

    assert [r["id"] for r in store.list_runs()] == [other, *reversed(kids), parent]
    assert [r["id"] for r in store.list_runs(name="mlp")] == list(reversed(kids))
    assert [r["id"] for r in store.list_runs(kind="experiment")] == [parent]
    assert [r["id"] for r in store.list_runs(status="failed")] == [kids[1]]
    assert [r["id"] for r in store.list_runs(parent_id=parent, limit=2)] == [kids[2], kids[1]]
    assert [r["id"] for r in store.list_runs(sweep_id="sw", status="running")] == [kids[2], kids[0]]
    assert [c["id"] for c in store.children(parent)] == kids
    assert [c["label"] for c in store.children(parent)] == ["seed=0", "seed=1", "seed=2"]
    assert store.children(other) == []
    with pytest.raises(ValueError):
        store.list_runs(status="crashed")


def test_find_done_ignores_failed_and_running_and_returns_newest(store: Store) -> None:
    assert store.find_done("train", "mlp", "h1") is None
    first = _run(store)
    store.finish_run(first, "done")
    failed = _run(store)
    store.finish_run(failed, "failed")
    second = _run(store)
    store.finish_run(second, "done")
    _run(store)  # still running
    other_hash = _run(store, config_hash="h2")
    store.finish_run(other_hash, "done")
    other_kind = _run(store, kind="experiment")
    store.finish_run(other_kind, "done")

    assert store.find_done("train", "mlp", "h1") == second
    assert store.find_done("train", "mlp", "h2") == other_hash
    assert store.find_done("experiment", "mlp", "h1") == other_kind
    assert store.find_done("train", "mlp", "h3") is None


def test_load_runs_dataframe(store: Store) -> None:
    parent = _run(store, kind="experiment", name="exp")
    child = _run(store, parent_id=parent)
    store.finish_run(parent, "done", verdict={"passed": True})
    frame = load_runs(store)
    assert list(frame["id"]) == [child, parent]
    assert list(frame.columns[:13]) == ["id", "kind", "name", "label", "parent_id", "sweep_id", "status", "passed",
                                        "config_hash", "started", "finished", "duration_s", "error"]
    assert "config" in frame.columns
    row = frame.set_index("id").loc[parent]
    assert bool(row["passed"]) is True and row["config"] == {"width": 8, "lr": 0.1}
    assert frame.set_index("id").loc[child, "parent_id"] == parent
    assert pd.isna(frame.set_index("id").loc[child, "passed"])
    assert list(load_runs(store, kind="experiment")["id"]) == [parent]
    assert list(load_runs(store.path, status="running")["id"]) == [child]  # path: opened read-only
    assert load_runs(store, name="nothing").empty


def test_readonly_store_reads_but_never_writes(store: Store, tmp_path: Path) -> None:
    run = _run(store)
    store.close()
    before = store.path.read_bytes()
    with Store(store.path, readonly=True) as ro:
        assert ro.get_run(run)["status"] == "running"
        with pytest.raises(StoreError, match="read-only"):
            ro.create_run(kind="train", name="x", config={}, config_hash="h")
        with pytest.raises(StoreError, match="read-only"):
            ro.log_metrics(run, [(0, "loss", 1.0)])
        with pytest.raises(StoreError, match="read-only"):
            ro.save_text(run, "a.txt", "x")
    assert store.path.read_bytes() == before


def test_default_store_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHENOLAB_STORE", str(tmp_path / "elsewhere.sqlite"))
    assert default_store_path() == tmp_path / "elsewhere.sqlite"
    monkeypatch.delenv("PHENOLAB_STORE")
    monkeypatch.chdir(tmp_path)
    assert default_store_path() == tmp_path / "phenolab-runs" / "phenolab.sqlite"


def test_store_without_path_uses_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHENOLAB_STORE", str(tmp_path / "env" / "s.sqlite"))
    with Store() as st:
        assert st.path == tmp_path / "env" / "s.sqlite" and st.root == tmp_path / "env"
    assert (tmp_path / "env" / "s.sqlite").is_file()


def test_run_statuses_constant() -> None:
    assert RUN_STATUSES == ("running", "done", "failed", "diverged", "interrupted")


def test_readonly_store_sees_later_commits_of_a_writer(store: Store) -> None:
    first = _run(store)
    with Store(store.path, readonly=True) as ro:
        assert [r["id"] for r in ro.list_runs()] == [first]
        second = _run(store)
        store.finish_run(first, "done")
        assert [r["id"] for r in ro.list_runs()] == [second, first]
        assert ro.get_run(first)["status"] == "done"
