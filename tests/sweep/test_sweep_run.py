"""Sweeps run every point into the store under one id, batch runs across points, resume after a kill."""

import subprocess
import sys
from collections import Counter

import pytest

from phenolab.config import ConfigError
from phenolab.store import Store
from phenolab.sweep import sweep_from_cli
from phenolab.sweep.report import load_sweep_record, sweep_figures
from phenolab.sweep.run import run_sweep


def small_sweep(**kw):
    return sweep_from_cli("condensation", ["small_gamma=1.5,2"], seeds=1, base_overrides=["train.steps=300"], **kw)


def test_sweep_runs_each_point_once_and_resumes_by_hash(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        outcome = run_sweep(small_sweep(), store=st)
        assert [p.values for p, _ in outcome.points] == [{"small_gamma": 1.5}, {"small_gamma": 2}]
        experiments = st.list_runs(kind="experiment", sweep_id=outcome.sweep_id)
        assert len(experiments) == 2 and all(r["status"] == "done" for r in experiments)
        # the large-init run is the same config at both points: trained once, shared
        trains = st.list_runs(kind="train")
        assert len(trains) == 3 and len({r["config_hash"] for r in trains}) == 3
        record = st.get_run(outcome.run_id)
        assert record["kind"] == "sweep" and record["config"]["axis_values"] == {"small_gamma": [1.5, 2]}
        assert len(sweep_figures(record)) >= 2
        again = run_sweep(small_sweep(), store=st)
        assert again.reused and again.run_id == outcome.run_id
        assert len(st.list_runs(kind="train")) == 3


def test_bad_axes_fail_before_anything_is_stored(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        for axes in (["small_gama=1,2"], ["small_gamma="], ["width=-5,10"]):
            with pytest.raises(ConfigError):
                run_sweep(sweep_from_cli("condensation", axes), store=st)
        assert st.list_runs() == []


def test_sweep_report_needs_a_known_sweep(tmp_path):
    from phenolab.store import StoreError

    with Store(tmp_path / "s.sqlite") as st:
        with pytest.raises(StoreError, match="no finished sweep 'nope'"):
            load_sweep_record(st, "nope")


@pytest.mark.slow
def test_killed_sweep_resumes_with_no_run_lost_or_doubled(tmp_path, kill_after_done_runs):
    """SIGKILL the sweep once its first point's runs are done; the same command then completes it,
    reusing what was done, and every training config ends done exactly once."""
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "phenolab.cli", "sweep", "condensation", "--axis", "width=40,60,80,100",
           "--seeds", "1", "train.steps=2000", "--store", str(store)]
    done_before = kill_after_done_runs(cmd, store, 2, 90)
    assert len(done_before) >= 2, "the first point did not finish in time"
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    with Store(store, readonly=True) as st:
        done = [r for r in st.list_runs(kind="train") if r["status"] == "done"]
        counts = Counter(r["config_hash"] for r in done)
        assert len(counts) == 8 and set(counts.values()) == {1}  # 4 widths x (small, large): each once
        assert {r["id"] for r in done_before} <= {r["id"] for r in done}  # nothing finished was redone
        sweeps = st.list_runs(kind="sweep")
        assert [s["status"] for s in sweeps] == ["done", "interrupted"]
        assert len(st.list_runs(kind="experiment", status="done", sweep_id=sweeps[0]["sweep_id"])) == 4
