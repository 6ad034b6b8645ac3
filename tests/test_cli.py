"""The `phenolab` command: exit codes, one-line errors for bad input, store left unchanged."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phenolab import cli
from phenolab.store import Store
from phenolab.train import Recorder


def call(capsys, *args: str) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["phenolab", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def store_with_a_run(tmp_path):
    path = tmp_path / "s.sqlite"
    with Recorder(path, "kept", config={"a": 1}) as rec:
        rec.record(0, loss=1.0)
    return path


@pytest.mark.parametrize("args,expected", [
    (["run", "nope"], "experiment: unknown experiment 'nope'"),
    (["run", "f-principel"], "did you mean 'f-principle'?"),
    (["run", "f-principle", "model.widht=3"], "model.widht: unknown key; did you mean 'width'?"),
    (["run", "f-principle", "train.lr=abc"], "train.lr: input should be a valid number"),
    (["run", "f-principle", "model.widths=[200,-3]"], "model.widths.1: must be > 0, got -3"),
    (["run", "f-principle", "seeds=oops"], "seeds: input should be a valid list"),
    (["run", "f-principle", "--quick", "--full"], "choose one"),
    (["runs", "--status", "weird"], "--status: must be one of"),
])
def test_bad_input_is_one_line_exit_2_and_store_unchanged(capsys, store_with_a_run, args, expected):
    before = digest(store_with_a_run)
    code, out, err = call(capsys, *args, "--store", str(store_with_a_run))
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1
    assert digest(store_with_a_run) == before
    with Store(store_with_a_run, readonly=True) as st:
        assert [r["name"] for r in st.list_runs()] == ["kept"]


def test_unknown_experiment_creates_no_store(capsys, tmp_path):
    code, _, _ = call(capsys, "run", "nope", "--store", str(tmp_path / "new" / "s.sqlite"))
    assert code == 2 and not (tmp_path / "new").exists()


def test_corrupt_and_unwritable_stores_exit_2_untouched(capsys, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(os.urandom(4096))
    before = digest(bad)
    for command in (["runs"], ["run", "f-principle", "seeds=[0]", "train.steps=5"]):
        code, _, err = call(capsys, *command, "--store", str(bad))
        assert code == 2 and "not a SQLite database" in err
    assert digest(bad) == before and sorted(p.name for p in tmp_path.iterdir()) == ["bad.sqlite"]
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, err = call(capsys, "run", "f-principle", "seeds=[0]", "train.steps=5",
                        "--store", str(blocker / "s.sqlite"))
    assert code == 2 and str(blocker) in err


def test_failed_verdict_exits_1_and_passing_exits_0(capsys, tmp_path):
    store = str(tmp_path / "s.sqlite")
    code, out, _ = call(capsys, "run", "f-principle", "seeds=[0]", "train.steps=5", "--store", store)
    assert code == 1 and "FAIL" in out
    code, out, _ = call(capsys, "run", "f-principle", "seeds=[0]", "train.steps=800", "--store", store)
    assert code == 0 and "PASS" in out and "t_highest / t_lowest" in out
    code, out, _ = call(capsys, "run", "f-principle", "seeds=[0]", "train.steps=800", "--store", store)
    assert code == 0 and "reused" in out


def test_list_runs_show_and_report(capsys, tmp_path):
    code, out, _ = call(capsys, "list")
    assert code == 0 and "f-principle-nd" in out and "1807.01251" in out
    store = tmp_path / "s.sqlite"
    with Recorder(store, "<script>alert(1)</script>", config={"note": "<b>x</b>"}) as rec:
        for step in range(5):
            rec.record(step, loss=1.0 / (step + 1))
    code, out, _ = call(capsys, "runs", "--store", str(store))
    assert code == 0 and "done" in out
    code, out, _ = call(capsys, "show", str(rec.run_id), "--store", str(store))
    assert code == 0 and "loss = 0.2 @ 4" in out
    code, out, _ = call(capsys, "report", str(rec.run_id), "--store", str(store))
    page = (tmp_path / "runs" / str(rec.run_id) / "report.html").read_text()
    assert code == 0 and "&lt;script&gt;" in page and "<script>alert" not in page
    code, _, err = call(capsys, "show", "999", "--store", str(store))
    assert code == 2 and "no run 999" in err


@pytest.mark.slow
def test_killed_run_is_marked_interrupted_and_resumes(tmp_path, kill_after_done_runs):
    """SIGKILL `phenolab run` once its first ensemble (one width of the phase diagram) is done:
    nothing finished is lost, and the same command completes the experiment reusing those runs."""
    from collections import Counter

    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "phenolab.cli", "run", "phase-diagram", "widths=[100,400,1600,6400]",
           "--store", str(store)]
    done_before = kill_after_done_runs(cmd, store, 9, 150)
    assert len(done_before) >= 9, "the first width did not finish in time"
    with Store(store) as st:
        assert st.list_runs(kind="experiment")[0]["status"] == "interrupted"
        kept = st.metrics(done_before[0]["id"])
        assert len(kept[kept.name == "loss"]) > 0
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with Store(store, readonly=True) as st:
        done = st.list_runs(kind="train", status="done")
        assert len(done) == 36 and set(Counter(r["config_hash"] for r in done).values()) == {1}
        parent = st.list_runs(kind="experiment", status="done")[0]
        assert {r["id"] for r in done_before} <= set(parent["summary"]["runs"].values())


def test_sweep_command_bad_axis_and_report(capsys, tmp_path):
    store = str(tmp_path / "s.sqlite")
    code, _, err = call(capsys, "sweep", "condensation", "--axis", "small_gama=1,2", "--store", store)
    assert code == 2 and "small_gama" in err and "did you mean" in err
    code, _, err = call(capsys, "sweep", "condensation", "--store", store)
    assert code == 2 and "--axis" in err
    code, out, _ = call(capsys, "sweep", "condensation", "--axis", "small_gamma=1.5,2", "--seeds", "1",
                        "train.steps=200", "--store", store)
    assert code == 0 and "2 points" in out
    sid = next(line.split()[2] for line in out.splitlines() if line.startswith("phenolab report"))
    code, out, _ = call(capsys, "report", sid, "--store", store)
    assert code == 0 and "report.html" in out
    code, out, _ = call(capsys, "runs", "--sweep", sid, "--kind", "experiment", "--store", store)
    assert code == 0 and out.count("condensation") >= 2
