"""Executors: the local pool equals the inline path run by run, retries a worker that dies, fails
only the group whose worker keeps dying, stops cleanly on Ctrl-C, and shares a store with another sweep."""

import json
import operator
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tiny_sweeps import assert_same_runs, processes, tiny_sweep, train_runs

from phenolab.config import ConfigError
from phenolab.execution.executors import (
    Executor,
    InlineExecutor,
    Job,
    JobFailed,
    LocalExecutor,
    executor_names,
    make_executor,
    register_executor,
)
from phenolab.execution.jobs import TEST_KILL_ENV
from phenolab.store import Store
from phenolab.sweep.run import run_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


def test_local_equals_inline_run_by_run(tmp_path, inline_store):
    with Store(tmp_path / "s.sqlite") as st, LocalExecutor(jobs=2, threads=1) as ex:
        outcome = run_sweep(tiny_sweep(), store=st, executor=ex)
        assert len(ex.stats) == 2 and all(s.attempts == 1 for s in ex.stats)
        assert len({s.worker for s in ex.stats}) == 2  # the two groups went to two workers
        assert_same_runs(st, inline_store)
        assert st.get_run(outcome.run_id)["status"] == "done"
        with Store(inline_store, readonly=True) as ref_st:
            verdicts = {r["config_hash"]: r["verdict"]["passed"] for r in ref_st.list_runs(kind="experiment")}
        assert {r["config_hash"]: r["verdict"]["passed"] for r in st.list_runs(kind="experiment")} == verdicts


def kill_jobs(monkeypatch, tmp_path: Path, jobs: dict[int, int]) -> Path:
    """Make the workers that start these jobs SIGKILL themselves, job -> how many times."""
    marks = tmp_path / "kills"
    marks.mkdir()
    monkeypatch.setenv(TEST_KILL_ENV, json.dumps({"jobs": {str(k): n for k, n in jobs.items()}, "dir": str(marks)}))
    return marks


def test_a_worker_killed_mid_sweep_is_retried_and_no_run_is_doubled(tmp_path, monkeypatch, inline_store):
    marks = kill_jobs(monkeypatch, tmp_path, {1: 1})
    with Store(tmp_path / "s.sqlite") as st, LocalExecutor(jobs=2, attempts=3, threads=1) as ex:
        outcome = run_sweep(tiny_sweep(), store=st, executor=ex)
        assert sorted(s.attempts for s in ex.stats) == [1, 2]
        runs = train_runs(st)  # every run once: the retry recorded into the runs opened at dispatch
        assert len(runs) == 6 and {r["status"] for r in runs.values()} == {"done"}
        with Store(inline_store, readonly=True) as ref_st:
            reference = train_runs(ref_st)
            for h, run in runs.items():
                assert run["summary"]["final_loss"] == pytest.approx(reference[h]["summary"]["final_loss"], rel=1e-6)
        assert st.get_run(outcome.run_id)["status"] == "done"
        assert all(r["status"] == "done" for r in st.list_runs(kind="experiment"))
    assert len(list(marks.iterdir())) == 1


def test_a_group_whose_worker_always_dies_fails_after_its_attempts_and_the_rest_completes(tmp_path, monkeypatch):
    marks = kill_jobs(monkeypatch, tmp_path, {0: 99})
    with Store(tmp_path / "s.sqlite") as st, LocalExecutor(jobs=2, attempts=2, threads=1) as ex:
        outcome = run_sweep(tiny_sweep(), store=st, executor=ex)
        runs = list(train_runs(st).values())
        failed = [r for r in runs if r["status"] == "failed"]
        assert len(runs) == 6 and len(failed) == 3 and all(r["status"] == "done" for r in runs if r not in failed)
        assert {r["config"]["model"]["width"] for r in failed} == {20}  # the first group: width 20
        for r in failed:
            assert r["error"].startswith("worker died 2 times: exit codes SIGKILL(-9), SIGKILL(-9)"), r["error"]
            assert len(st.metrics(r["id"])) == 0
        assert st.get_run(outcome.run_id)["status"] == "done"  # the sweep went on and finished
        points = {p.values["width"]: o for p, o in outcome.points}
        assert not points[20].passed and "worker died" in points[20].verdict["failure"]
    assert len(list(marks.iterdir())) == 2


def test_executor_registry_and_job_errors():
    assert executor_names()[:2] == ["inline", "local"]
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'phenolab\[ray\]'"):
            make_executor("ray")
    else:
        assert make_executor("ray").name == "ray"  # nothing starts until the executor is entered
    with pytest.raises(ConfigError, match="executor: must be one of inline, local"):
        make_executor("threads")
    with pytest.raises(ConfigError, match="jobs: must be a positive integer, got 0"):
        make_executor("local", jobs=0)
    with pytest.raises(ConfigError, match="attempts: the inline executor"):
        make_executor("inline", attempts=2)
    local = make_executor("local", jobs=2)
    assert isinstance(local, LocalExecutor) and local.jobs == 2 and local.attempts == 3 and local.threads >= 1
    # a job that raises is not retried: its JobFailed, then the exception itself
    got: dict[int, object] = {}
    with InlineExecutor() as ex:
        with pytest.raises(ZeroDivisionError):
            ex.run_jobs([Job(operator.add, (1, 2)), Job(operator.truediv, (1, 0), "divide")],
                        on_done=got.__setitem__)
    assert got[0] == 3 and isinstance(got[1], JobFailed) and got[1].reason.startswith("ZeroDivisionError")


class RaisingExecutor(Executor):
    """A plug-in executor as Ray's will be: jobs run here, but through the out-of-process
    bookkeeping (buffers replayed by the driver); every group is dispatched at once, job
    `raise_at` raises."""

    name = "raising"
    in_process = False

    def __init__(self, raise_at: int = 0, jobs=None, attempts=None):
        super().__init__()
        self.raise_at = raise_at

    def run_jobs(self, jobs, *, on_start=None, on_done, on_idle=None):
        for i in range(len(jobs)):
            on_start(i)
        for i, job in enumerate(jobs):
            if i == self.raise_at:
                error = RuntimeError("boom")
                on_done(i, JobFailed("RuntimeError: boom", 1, error))
                raise error
            on_done(i, job.fn(*job.args))


def test_a_plugged_in_executor_records_through_the_driver_and_a_raising_group_stops_the_sweep(tmp_path, monkeypatch):
    import phenolab.execution.executors as executors

    monkeypatch.setattr(executors, "_REGISTRY", dict(executors._REGISTRY))
    register_executor("raising", RaisingExecutor)
    assert "raising" in executor_names()
    with Store(tmp_path / "ok.sqlite") as st, make_executor("raising", jobs=2) as ex:
        ex.raise_at = -1  # no job raises: the buffered path gives the inline results
        run_sweep(tiny_sweep(), store=st, executor=ex)
        assert {r["status"] for r in train_runs(st).values()} == {"done"}
    with Store(tmp_path / "s.sqlite") as st:
        with pytest.raises(RuntimeError, match="boom"):
            run_sweep(tiny_sweep(), store=st, executor=RaisingExecutor(raise_at=0))
        runs = list(train_runs(st).values())
        by_width = {w: {r["status"] for r in runs if r["config"]["model"]["width"] == w} for w in (20, 30)}
        assert by_width == {20: {"failed"}, 30: {"interrupted"}}
        assert {r["error"] for r in runs} == {"RuntimeError: boom",
                                              "stopped because another group raised RuntimeError: boom"}
        assert st.list_runs(kind="sweep")[0]["status"] == "failed"


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc)."""
    return {child for child, fields in processes().items() if int(fields[1]) == pid}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _start_until_done(cmd: list[str], store: Path, timeout: float = 90) -> tuple[subprocess.Popen, list, set[int]]:
    """Start `cmd`; once a training run is done, return the process, the done runs and its children."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, done, workers = time.monotonic() + timeout, [], set()
    while time.monotonic() < deadline and not done:
        time.sleep(0.2)
        workers |= _children(proc.pid)
        try:
            with Store(store, readonly=True) as st:
                done = [r for r in st.list_runs(kind="train") if r["status"] == "done"]
        except Exception:  # the driver may not have written the schema yet
            continue
    workers |= _children(proc.pid)
    assert done, "no group finished in time"
    return proc, done, workers


def _all_gone(pids: set[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


SLOW_SWEEP = ["sweep", "condensation", "--axis", "width=20,30,40,50,60,70", "--seeds", "1", "train.steps=6000",
              "--jobs", "2"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_ctrl_c_stops_the_workers_and_marks_unfinished_runs_interrupted(tmp_path):
    store = tmp_path / "s.sqlite"
    proc, done, workers = _start_until_done([sys.executable, "-m", "phenolab.cli", *SLOW_SWEEP, "--store", str(store)],
                                            store)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0, stderr
    assert workers and _all_gone(workers), "workers outlived the driver"
    with Store(store, readonly=True) as st:  # read only: as the driver left it, nothing marked on open
        assert "running" not in {r["status"] for r in st.list_runs()}
        trains = st.list_runs(kind="train")
        interrupted = [r for r in trains if r["status"] == "interrupted"]
        assert interrupted and all(r["error"] == "interrupted by the user (KeyboardInterrupt)" for r in interrupted)
        assert {r["id"] for r in done} <= {r["id"] for r in trains if r["status"] == "done"}
        assert st.list_runs(kind="sweep")[0]["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_a_killed_driver_takes_its_workers_along_and_the_same_command_resumes(tmp_path):
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "phenolab.cli", *SLOW_SWEEP, "--store", str(store)]
    proc, done, workers = _start_until_done(cmd, store)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert workers and _all_gone(workers), "workers of a killed driver kept computing"
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    with Store(store, readonly=True) as st:
        runs = st.list_runs(kind="train")
        finished = Counter(r["config_hash"] for r in runs if r["status"] == "done")
        assert len(finished) == 12 and set(finished.values()) == {1}  # 6 widths x (small, large): each done once
        assert {r["status"] for r in runs} <= {"done", "interrupted"}  # the killed driver's runs in flight
        assert {r["id"] for r in done} <= {r["id"] for r in runs if r["status"] == "done"}
        assert [s["status"] for s in st.list_runs(kind="sweep")] == ["done", "interrupted"]


def test_two_sweeps_at_once_on_one_store_lose_and_double_nothing(tmp_path):
    store = tmp_path / "s.sqlite"

    def command(widths: str, executor: list[str]) -> list[str]:
        return [sys.executable, "-m", "phenolab.cli", "sweep", "condensation", "--axis", f"width={widths}",
                "--seeds", "1", "train.steps=150", *executor, "--store", str(store)]

    env = {**os.environ, "PHENOLAB_THREADS": "1"}
    procs = [subprocess.Popen(command(w, executor), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for w, executor in (("20,30", ["--jobs", "1"]), ("24,36", ["--executor", "inline"]))]
    outputs = [p.communicate(timeout=150) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    with Store(store, readonly=True) as st:
        runs = train_runs(st)
        assert len(runs) == 8 and {r["status"] for r in runs.values()} == {"done"}
        assert sorted(r["config"]["model"]["width"] for r in runs.values()) == [20, 20, 24, 24, 30, 30, 36, 36]
        sweeps = st.list_runs(kind="sweep")
        assert len(sweeps) == 2 and {s["status"] for s in sweeps} == {"done"}
        for s in sweeps:
            points = st.list_runs(kind="experiment", sweep_id=s["sweep_id"], status="done")
            assert len(points) == 2
