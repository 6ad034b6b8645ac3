"""A config hash is claimed before it trains: two drivers never train it twice."""

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from phenolab.config import RunSpec, validate
from phenolab.execution.groups import TrainItem, train_items
from phenolab.store import Store


def _spec(seed: int = 0) -> RunSpec:
    return validate(RunSpec, {"model": {"width": 6}, "data": {"kind": "sines", "n_train": 16},
                              "train": {"steps": 20, "optimizer": "gd", "lr": 0.05}, "seed": seed})


def test_claim_run_reports_done_busy_or_claims(tmp_path):
    config = _spec().model_dump(mode="json")
    args = dict(kind="train", name="x", config=config, config_hash="h1", code_version="v")
    with Store(tmp_path / "s") as st:
        status, first = st.claim_run(**args)
        assert status == "claimed" and st.get_run(first)["status"] == "running"
        # another live process holds it (the test's parent process stands in for the other driver)
        with st._writing() as conn:
            conn.execute("UPDATE runs SET pid = ?, proc_start = NULL WHERE id = ?", (os.getppid(), first))
        assert st.claim_run(**args) == ("busy", first)
        st.finish_run(first, "done")
        assert st.claim_run(**args) == ("done", first)
        # a running run whose owner is gone is taken over
        status, second = st.claim_run(**{**args, "config_hash": "h2"})
        with st._writing() as conn:
            conn.execute("UPDATE runs SET pid = ?, proc_start = NULL WHERE id = ?", (2**22 + 12345, second))
        status, third = st.claim_run(**{**args, "config_hash": "h2"})
        assert status == "claimed" and third != second and st.get_run(second)["status"] == "interrupted"
        assert st.claim_run(**{**args, "code_version": "other"})[0] == "claimed"  # other code: its own result


def test_a_failed_run_is_trained_again_and_a_done_one_is_not(tmp_path):
    with Store(tmp_path / "s") as st:
        (first,) = train_items([TrainItem("x", "a", _spec())], st)
        st.finish_run(first.run_id, "failed", error="worker died")  # as if its worker had died
        (again,) = train_items([TrainItem("x", "a", _spec())], st)
        assert again.run_id != first.run_id and again.status == "done"
        (reused,) = train_items([TrainItem("x", "a", _spec())], st)
        assert reused.run_id == again.run_id


def test_two_identical_sweeps_at_once_run_each_config_hash_once(tmp_path):
    """Training runs, experiment runs (points) and the sweep run are each claimed before they run:
    the second driver waits for the first and judges its results again."""
    store = tmp_path / "s.sqlite"
    src = Path(__file__).resolve().parents[2] / "src"
    here = Path(__file__).resolve().parent
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(src)!r}, {str(here)!r}]
        from phenolab.threads import set_threads
        set_threads(1)
        from phenolab.store import Store
        from phenolab.sweep.run import run_sweep
        from tiny_sweeps import tiny_sweep
        with Store({str(store)!r}) as st:
            run_sweep(tiny_sweep(steps=300), store=st)
    """)
    Store(store).close()  # the schema exists before both start
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with Store(store, readonly=True) as st:
        runs = st.list_runs(kind="train")
        parents = st.list_runs(kind="experiment")
        sweeps = st.list_runs(kind="sweep")
    hashes = Counter(r["config_hash"] for r in runs)
    assert len(hashes) == 6 and set(hashes.values()) == {1}, hashes  # tiny_sweep: 6 training configs
    assert {r["status"] for r in runs} == {"done"}
    points = Counter(r["config_hash"] for r in parents)  # 4 points, one experiment run each
    assert len(points) == 4 and set(points.values()) == {1}, points
    assert len(sweeps) == 1 and sweeps[0]["status"] == "done"
    assert {r["status"] for r in parents} == {"done"}
