"""Crash recovery: runs of dead processes become 'interrupted', live ones are left alone."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from phenolab.store import Store
from phenolab.store.liveness import process_start

SRC = str(Path(__file__).resolve().parents[2] / "src")
BATCH = 50

KILLED_WRITER = f"""
import sys
from phenolab.store import Store
from phenolab.store.liveness import process_start
st = Store(sys.argv[1])
run = st.create_run(kind="train", name="killed", config={{}}, config_hash="h")
print(run, flush=True)
i = 0
while True:
    st.log_metrics(run, [(i * {BATCH} + j, "loss", float(j)) for j in range({BATCH})])
    i += 1
    if i == 5:
        print("ready", flush=True)
"""

LIVE_WRITER = """
import sys
from phenolab.store import Store
from phenolab.store.liveness import process_start
st = Store(sys.argv[1])
run = st.create_run(kind="train", name="live", config={}, config_hash="h")
st.log_metrics(run, [(0, "loss", 1.0)])
print(run, flush=True)
sys.stdin.readline()
"""


def _spawn(script: str, path: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True,
                            env=env, **kw)


def _set(path: Path, run: int, **columns) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for column, value in columns.items():
            conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run))
    conn.close()


def test_sigkilled_writer_is_interrupted_with_whole_commits(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    proc = _spawn(KILLED_WRITER, path)
    try:
        run = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    with Store(path, readonly=True) as ro:  # read-only opens never mark anything
        assert ro.get_run(run)["status"] == "running"

    with Store(path) as st:
        r = st.get_run(run)
        assert r["status"] == "interrupted"
        assert r["error"] == f"process {proc.pid} on {socket.gethostname()} ended without finishing the run"
        assert r["finished"] is not None
        count = len(st.metrics(run))
        assert count >= 5 * BATCH and count % BATCH == 0
        steps = st.metrics(run)["step"].tolist()
        assert steps == list(range(count))  # no gap: every commit before the kill is there
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_live_writer_is_left_alone_until_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    proc = _spawn(LIVE_WRITER, path, stdin=subprocess.PIPE)
    try:
        run = int(proc.stdout.readline())
        with Store(path) as st:
            assert st.get_run(run)["status"] == "running"
            mine = st.create_run(kind="train", name="mine", config={}, config_hash="h")  # concurrent writer
            st.finish_run(mine, "done")
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
    with Store(path) as st:
        assert st.get_run(run)["status"] == "interrupted"
        assert st.get_run(mine)["status"] == "done"
        assert len(st.metrics(run)) == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_own_running_run_is_alive_but_reused_pid_is_not(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        mine = st.create_run(kind="train", name="a", config={}, config_hash="h")
        reused = st.create_run(kind="train", name="b", config={}, config_hash="h")
    _set(path, reused, proc_start="another-boot:12345")
    with Store(path) as st:
        assert st.get_run(mine)["status"] == "running"
        assert st.get_run(reused)["status"] == "interrupted"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see zombies")
def test_zombie_process_counts_as_ended(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        run = st.create_run(kind="train", name="z", config={}, config_hash="h")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        _set(path, run, pid=proc.pid, proc_start=process_start(proc.pid))
        with Store(path) as st:
            assert st.get_run(run)["status"] == "interrupted"
    finally:
        proc.wait()


def test_other_host_needs_an_hour_without_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        stale = st.create_run(kind="train", name="a", config={}, config_hash="h")
        recent = st.create_run(kind="train", name="b", config={}, config_hash="h")
    old = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(timespec="microseconds")
    fresh = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(timespec="microseconds")
    _set(path, stale, hostname="elsewhere.example", pid=1, heartbeat=old, started=old)
    _set(path, recent, hostname="elsewhere.example", pid=1, heartbeat=fresh)
    with Store(path) as st:
        assert st.get_run(stale)["status"] == "interrupted"
        assert st.get_run(stale)["error"].startswith("process 1 on elsewhere.example ended without finishing")
        assert st.get_run(recent)["status"] == "running"
