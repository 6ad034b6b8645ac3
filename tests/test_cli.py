"""The `phenolab` command: exit codes, one-line errors for bad input, store left unchanged."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phenolab.store import Store
from phenolab.train import Recorder

from cli_call import call


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def store_with_a_run(tmp_path):
    path = tmp_path / "s.sqlite"
    with Recorder(path, "kept", config={"a": 1}) as rec:
        rec.record(0, loss=1.0)
    return path


BAD_PROBE_OPTION = "probes=[{name: frequency, options: {peak: 3}}, {name: outputs}]"


@pytest.mark.parametrize("args,expected", [
    (["run", "nope"], "experiment: unknown experiment 'nope'"),
    (["run", "f-principel"], "did you mean 'f-principle'?"),
    (["run", "f-principle", "model.widht=3"], "model.widht: unknown key; did you mean 'width'?"),
    (["run", "f-principle", "train.lr=abc"], "train.lr: input should be a valid number"),
    (["run", "f-principle", "model.widths=[200,-3]"], "model.widths.1: must be > 0, got -3"),
    (["run", "f-principle", "seeds=oops"], "seeds: input should be a valid list"),
    (["run", "f-principle", "--quick", "--full"], "choose one"),
    (["runs", "--status", "weird"], "--status: must be one of"),
    (["run", "f-principle", BAD_PROBE_OPTION], "probes[0].options.peak: unknown option of probe frequency"),
    (["run", "f-principle", "train.optimizer=gd", "train.batch_size=32"], "train.batch_size: gd is full-batch"),
    (["run", "f-principle", "train.momentum=0.9"], "train.momentum: only used by optimizer=sgd or gd"),
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


@pytest.mark.parametrize("overrides, expected", [
    ([BAD_PROBE_OPTION], "error: probes[0].options.peak: unknown option of probe frequency; did you mean 'peaks'? "
                         "(allowed: batch_size, floor, max_peaks, output, peaks, spectra)"),
    (["train.optimizer=gd", "train.batch_size=32"], "error: train.batch_size: gd is full-batch gradient descent; "
                                                    "use optimizer=sgd for minibatches, got batch_size=32"),
    (["train.momentum=0.9"], "error: train.momentum: only used by optimizer=sgd or gd, got momentum=0.9 with "
                             "optimizer='adam'"),
])
def test_gaps_once_found_at_train_time_are_one_line_exit_2_before_any_store(capsys, tmp_path, overrides, expected):
    code, out, err = call(capsys, "run", "f-principle", "train.steps=5", *overrides,
                          "--store", str(tmp_path / "new" / "s.sqlite"))
    assert code == 2 and err.strip() == expected and not (tmp_path / "new").exists()


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


# ------------------------------------------------------------------ runs filters and export
def _fake_store_module():
    """tests/store/fake_store.py (a fake sweep written through the Store API), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_store", Path(__file__).parent / "store" / "fake_store.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def sweep_store(tmp_path):
    fake = _fake_store_module()
    path = tmp_path / "store" / "s.sqlite"
    with Store(path) as st:
        ids = fake.write_fake_sweep(st)
    return path, ids, fake.SWEEP_ID


def listed(out: str) -> set[int]:
    """The run ids in the first column of `phenolab runs`' table."""
    return {int(line.split("│")[1]) for line in out.splitlines()
            if line.startswith("│") and line.split("│")[1].strip().isdigit()}


def test_runs_filters_by_config_field_experiment_and_sweep(capsys, sweep_store):
    path, ids, sid = sweep_store
    t, ref, (exp0, exp1) = ids["train"], ids["reference"], ids["experiments"]
    store = ["--store", str(path)]
    cases = [
        (["--where", "model.width=100.0", "--kind", "train"], {t[(100, 0)], t[(100, 1)]}),
        (["--where", "model.width=200", "--where", "seed=1"], {t[(200, 1)]}),
        (["--where", "model.activation=relu", "--where", "train.lr=0.2"], {t[(100, 1)], t[(200, 1)]}),
        (["--experiment", "toy", "--status", "diverged"], {t[(200, 1)]}),
        (["--experiment", str(exp1)], {t[(200, 0)], t[(200, 1)], ref}),
        (["--sweep", sid, "--kind", "experiment"], {exp0, exp1}),
        (["--sweep", sid, "--kind", "train", "--where", "seed=0"], {t[(100, 0)], t[(200, 0)], ref}),
    ]
    for args, expected in cases:
        code, out, _ = call(capsys, "runs", *args, *store)
        assert code == 0 and listed(out) == expected, args


@pytest.mark.parametrize("args,expected", [
    (["--where", "model.width"], "--where: expected PATH=VALUE with a dotted config path (e.g. model.width=100)"),
    (["--where", "=3"], "--where: expected PATH=VALUE"),
    (["--where", "model.widht=100"], "--where model.widht: no run in"),
    (["--where", "model.widht=100"], "did you mean 'model.width'"),
    (["--experiment", "tyo"], "--experiment: no experiment run named 'tyo'"),
    (["--experiment", "tyo"], "(experiments: toy); did you mean 'toy'?"),
    (["--experiment", "3"], "--experiment 3: run 3 is a train run, not an experiment run"),
    (["--experiment", "999"], "no run 999"),
    (["--status", "weird"], "--status: must be one of running, done, failed, diverged, interrupted, got 'weird'"),
])
def test_bad_runs_filters_are_one_line_exit_2_store_unchanged(capsys, sweep_store, args, expected):
    path, _, _ = sweep_store
    before = digest(path)
    code, out, err = call(capsys, "runs", *args, "--store", str(path))
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1 and out == ""
    assert digest(path) == before


def test_export_writes_tables_and_event_files_where_asked(capsys, sweep_store, tmp_path, monkeypatch):
    import pandas as pd

    path, ids, sid = sweep_store
    before = digest(path)
    for fmt in ("csv", "parquet"):
        code, out, _ = call(capsys, "export", sid, "--to", fmt, "--out", str(tmp_path / fmt), "--store", str(path))
        assert code == 0 and f"runs.{fmt}, metrics.{fmt}" in out
    csv_runs = pd.read_csv(tmp_path / "csv" / "runs.csv")
    parquet_runs = pd.read_parquet(tmp_path / "parquet" / "runs.parquet")
    assert list(csv_runs["run_id"]) == list(parquet_runs["run_id"]) and len(csv_runs) == 6
    assert list(csv_runs["final.loss"].fillna(-1)) == list(parquet_runs["final.loss"].fillna(-1))
    monkeypatch.chdir(tmp_path)  # the default --out: ./phenolab-export/<id>/
    code, out, _ = call(capsys, "export", str(ids["experiments"][1]), "--to", "tensorboard", "--store", str(path))
    default = tmp_path / "phenolab-export" / str(ids["experiments"][1])
    assert code == 0 and "3 run directories" in out
    assert len(list(default.glob("*/events.out.tfevents.*"))) == 3
    code, _, err = call(capsys, "export", str(ids["experiments"][1]), "--to", "tensorboard", "--store", str(path))
    assert code == 2 and "already holds TensorBoard event files" in err and len(err.strip().splitlines()) == 1
    assert digest(path) == before


@pytest.mark.parametrize("args,expected", [
    (["nope", "--to", "csv"], "no sweep or run 'nope' in"),
    (["999", "--to", "csv"], "no run 999 in"),
    (["toy-sweep", "--to", "xls"], "--to: must be one of parquet, csv, tensorboard, got 'xls'"),
    (["toy-sweep"], "--to: give the format, one of parquet, csv, tensorboard"),
])
def test_bad_export_is_one_line_exit_2_and_writes_nothing(capsys, sweep_store, tmp_path, args, expected):
    path, _, _ = sweep_store
    before = digest(path)
    code, out, err = call(capsys, "export", *args, "--out", str(tmp_path / "out"), "--store", str(path))
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert digest(path) == before and not (tmp_path / "out").exists()


def test_export_without_the_extra_or_from_a_corrupt_store_exits_2(capsys, sweep_store, tmp_path, monkeypatch):
    path, _, sid = sweep_store
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(os.urandom(4096))
    bad_before = digest(bad)
    code, _, err = call(capsys, "export", sid, "--to", "csv", "--out", str(tmp_path / "out"), "--store", str(bad))
    assert code == 2 and "not a SQLite database" in err and len(err.strip().splitlines()) == 1
    assert digest(bad) == bad_before and not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    before = digest(path)
    code, _, err = call(capsys, "export", sid, "--to", "parquet", "--out", str(tmp_path / "out"), "--store", str(path))
    assert code == 2 and "pip install 'phenolab[export]'" in err and len(err.strip().splitlines()) == 1
    assert digest(path) == before and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ executor options
@pytest.mark.parametrize("args,expected", [
    (["sweep", "condensation", "--axis", "width=20,30", "--executor", "dask"],
     "--executor: must be one of inline, local"),
    (["sweep", "condensation", "--axis", "width=20,30", "--jobs", "0"], "--jobs: must be a positive integer, got '0'"),
    (["sweep", "condensation", "--axis", "width=20,30", "--attempts", "x"], "--attempts: must be a positive integer"),
    (["run", "f-principle", "--executor", "inline", "--jobs", "2"],
     "--jobs: the inline executor trains in this process"),
    (["run", "f-principle", "--attempts", "2"], "--attempts: the inline executor has no workers to retry"),
])
def test_bad_executor_options_are_one_line_exit_2_and_store_unchanged(capsys, store_with_a_run, args, expected):
    before = digest(store_with_a_run)
    code, _, err = call(capsys, *args, "--store", str(store_with_a_run))
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert digest(store_with_a_run) == before


def test_run_with_jobs_trains_in_workers_and_force_trains_again_inline(capsys, tmp_path):
    store = str(tmp_path / "s.sqlite")
    args = ["run", "f-principle", "seeds=[0,1]", "model.widths=[20]", "train.steps=20", "--store", store]
    code, out, _ = call(capsys, *args, "--jobs", "2")
    assert code in (0, 1) and "verdict" in out
    with Store(store, readonly=True) as st:
        first = {r["config_hash"]: r["id"] for r in st.list_runs(kind="train", status="done")}
    assert len(first) == 2
    code, out, _ = call(capsys, *args, "--executor", "inline", "--force")
    with Store(store, readonly=True) as st:
        assert len(st.list_runs(kind="train", status="done")) == 4  # --force trains again, inline


# ------------------------------------------------------------------ --address (the ray executor)
@pytest.mark.parametrize("args", [
    ["sweep", "condensation", "--axis", "width=20,30", "--address", "127.0.0.1:6379"],
    ["sweep", "condensation", "--axis", "width=20,30", "--executor", "local", "--address", "auto"],
    ["run", "f-principle", "--address", "auto"],
    ["verify", "--only", "f-principle", "--jobs", "2", "--address", "auto"],
])
def test_address_without_the_ray_executor_is_one_line_exit_2(capsys, store_with_a_run, args):
    before = digest(store_with_a_run)
    code, _, err = call(capsys, *args, "--store", str(store_with_a_run))
    assert code == 2 and "--address: only with --executor ray" in err and len(err.strip().splitlines()) == 1
    assert digest(store_with_a_run) == before


def test_a_bad_ray_address_is_one_line_exit_2_before_ray_starts(capsys, store_with_a_run):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'phenolab[ray]')")
    before = digest(store_with_a_run)
    code, _, err = call(capsys, "sweep", "condensation", "--axis", "width=20,30", "--executor", "ray",
                        "--address", "no-port-here", "--store", str(store_with_a_run))
    assert code == 2 and "--address: auto, HOST:PORT or ray://HOST:PORT" in err and len(err.strip().splitlines()) == 1
    assert digest(store_with_a_run) == before
