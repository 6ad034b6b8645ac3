"""The Ray executor: a private local Ray instance equals the inline path run by run, a worker that
dies is resubmitted (attempts in all, then its runs fail with the reason), a raising group stops
the sweep; and on a two-node cluster on loopback a sweep survives the loss of a node mid-sweep,
every run recorded exactly once.

Ray's token authentication (Ray 2.5x+): a local ``ray.init`` with ``RAY_AUTH_MODE`` unset turns
it on and writes ``~/.ray/auth_token``; a ``ray start`` node or a driver given an address sends
the token only with ``RAY_AUTH_MODE=token``. These tests set ``RAY_AUTH_MODE=token`` and a fresh
``RAY_AUTH_TOKEN`` for this process and every Ray process they start: nothing is written to the
home directory and no other cluster on the machine can be joined by mistake.

The cluster's processes are owned here (each ``ray start --block`` in its own session, killed by
session id); ``ray stop`` is never called, since it stops every Ray process on the machine by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

TOKEN = secrets.token_hex(32)
AUTH_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "RAY_USAGE_STATS_ENABLED": "0"}
_SAVED_ENV = {k: os.environ.get(k) for k in AUTH_ENV}
os.environ.update(AUTH_ENV)  # before Ray is imported: it reads RAY_AUTH_MODE into its config once

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'phenolab[ray]')")

from tiny_sweeps import assert_same_runs, processes, tiny_sweep, train_runs  # noqa: E402

from phenolab.execution.executors import Job, JobFailed, make_executor  # noqa: E402
from phenolab.execution.jobs import TEST_KILL_ENV  # noqa: E402
from phenolab.store import Store  # noqa: E402
from phenolab.sweep.run import run_sweep  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_thread")]

STORE_MB = 100 * 1024 * 1024  # Ray's object store for these tests: 100 MB, not 30 % of the machine's memory


@pytest.fixture(scope="module", autouse=True)
def ray_auth():
    """This module's token for every Ray process (see the module docstring); restored after."""
    os.environ.update(AUTH_ENV)
    try:  # in case Ray was imported before this module set the variables
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # pragma: no cover - Ray's internals moved
        pass
    yield
    for k, v in _SAVED_ENV.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_local_ray_equals_inline_run_by_run_and_shuts_down_what_it_started(tmp_path, inline_store):
    assert not ray.is_initialized()
    with Store(tmp_path / "s.sqlite") as st, make_executor("ray", jobs=2, object_store_memory=STORE_MB) as ex:
        assert ex.threads == 1 and ray.is_initialized()
        assert ray.cluster_resources().get("CPU") == 2  # workers x threads <= cores
        outcome = run_sweep(tiny_sweep(), store=st, executor=ex)
        assert len(ex.stats) == 2 and all(s.attempts == 1 and s.worker.startswith("pid ") for s in ex.stats)
        assert_same_runs(st, inline_store)
        assert st.get_run(outcome.run_id)["status"] == "done"
    assert not ray.is_initialized()  # it started Ray, so it stopped it


@pytest.fixture(scope="module")
def shared_ray():
    """One private Ray instance for the fault tests; an executor finding Ray up uses it and leaves it up."""
    ray.init(address="local", num_cpus=2, num_gpus=0, object_store_memory=STORE_MB, include_dashboard=False,
             logging_level="WARNING")
    yield
    ray.shutdown()


def kill_jobs(monkeypatch, tmp_path: Path, jobs: dict[int, int]) -> Path:
    marks = tmp_path / "kills"
    marks.mkdir()
    monkeypatch.setenv(TEST_KILL_ENV, json.dumps({"jobs": {str(k): n for k, n in jobs.items()}, "dir": str(marks)}))
    return marks


def test_a_killed_worker_is_resubmitted_and_one_that_always_dies_fails_after_its_attempts(tmp_path, monkeypatch,
                                                                                         shared_ray):
    marks = kill_jobs(monkeypatch, tmp_path, {0: 99, 1: 1})
    with Store(tmp_path / "s.sqlite") as st, make_executor("ray", jobs=2, attempts=2) as ex:
        outcome = run_sweep(tiny_sweep(), store=st, executor=ex)
        assert sorted(s.attempts for s in ex.stats) == [2, 2]
        runs = list(train_runs(st).values())
        failed = [r for r in runs if r["status"] == "failed"]
        assert len(runs) == 6 and len(failed) == 3 and all(r["status"] == "done" for r in runs if r not in failed)
        assert {r["config"]["model"]["width"] for r in failed} == {20}  # group 0, width 20, died twice
        for r in failed:
            assert r["error"].startswith("worker died 2 times: WorkerCrashedError"), r["error"]
        assert st.get_run(outcome.run_id)["status"] == "done"
    assert ray.is_initialized()  # not started by the executor: left up
    assert len(list(marks.iterdir())) == 3  # 2 kills of job 0, 1 of job 1


def test_a_raising_job_is_not_retried_and_is_re_raised(shared_ray):
    import operator

    got: dict[int, object] = {}
    with make_executor("ray", jobs=2, attempts=3) as ex:
        with pytest.raises(ZeroDivisionError):
            ex.run_jobs([Job(operator.add, (1, 2)), Job(operator.truediv, (1, 0), "divide")], on_done=got.__setitem__)
    failure = got[1]
    assert isinstance(failure, JobFailed) and failure.attempts == 1
    assert failure.reason == "ZeroDivisionError: division by zero"


def test_address_is_checked_and_the_extra_is_named_when_ray_is_missing(monkeypatch):
    import phenolab.execution.executors as executors
    from phenolab.config import ConfigError

    with pytest.raises(ConfigError, match="address: auto, HOST:PORT"):
        make_executor("ray", address="not an address")
    assert make_executor("ray", address="127.0.0.1:6379").address == "127.0.0.1:6379"  # nothing started yet
    monkeypatch.setattr(executors, "_REGISTRY", {k: v for k, v in executors._REGISTRY.items() if k != "ray"})
    monkeypatch.delitem(sys.modules, "phenolab.execution.ray_executor")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"the ray package is not installed; pip install 'phenolab\[ray\]'"):
        make_executor("ray")


# ------------------------------------------------------------------------------ two nodes on loopback
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _session(sid: int) -> list[int]:
    """Live processes in session `sid` (from /proc)."""
    return [pid for pid, fields in processes().items() if int(fields[3]) == sid and fields[0] not in "ZX"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the session `proc` leads (a node: raylet, agents, workers)."""
    for _ in range(3):
        for pid in _session(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class Node:
    """One ``ray start --block`` in its own session, its own temp dir and ports."""

    def __init__(self, tmp: Path, name: str, head_port: int | None = None) -> None:
        nm, om, agent, grpc, metrics, env_agent, client, worker_lo = free_ports(8)
        self.port = head_port if head_port is not None else free_ports(1)[0]
        args = [str(Path(sys.executable).parent / "ray"), "start", "--block", "--num-cpus", "1", "--num-gpus", "0",
                "--node-ip-address", "127.0.0.1", "--object-store-memory", str(STORE_MB),
                "--node-manager-port", str(nm), "--object-manager-port", str(om),
                "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(grpc),
                "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(env_agent),
                "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats"]
        if head_port is None:
            args += ["--head", "--port", str(self.port), "--ray-client-server-port", str(client),
                     "--include-dashboard", "false"]
        else:
            args += ["--address", f"127.0.0.1:{head_port}"]
        # its own temp dir, short: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
        self.temp = tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp")
        args += ["--temp-dir", self.temp]
        env = {**os.environ, **AUTH_ENV, "RAY_health_check_period_ms": "1000",
               "RAY_health_check_failure_threshold": "3", "RAY_health_check_timeout_ms": "1000"}
        env.pop(TEST_KILL_ENV, None)
        self.log = open(tmp / f"{name}.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def pids(self) -> list[int]:
        return _session(self.proc.pid)

    def kill(self) -> None:
        _kill_session(self.proc)
        self.log.close()

    def remove(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


def _wait_for_nodes(address: str, n: int, timeout: float, nodes: list[Node]) -> None:
    """Until the cluster at `address` has `n` alive nodes (asked from a subprocess: this process keeps no Ray)."""
    code = ("import ray, sys, time\n"
            f"ray.init(address={address!r}, logging_level='ERROR')\n"
            f"deadline = time.monotonic() + {timeout}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) < {n} and time.monotonic() < deadline: time.sleep(0.5)\n"
            f"sys.exit(0 if sum(n['Alive'] for n in ray.nodes()) >= {n} else 1)\n")
    env = {**os.environ, **AUTH_ENV}
    dead = [node for node in nodes if node.proc.poll() is not None]
    assert not dead, f"ray start exited: {Path(dead[0].log.name).read_text()[-2000:]}"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout + 30)
    assert result.returncode == 0, f"the cluster did not come up with {n} nodes: {result.stderr[-2000:]}"


@pytest.fixture()
def two_nodes(tmp_path):
    nodes: list[Node] = []
    try:
        head = Node(tmp_path, "head")
        nodes.append(head)
        address = f"127.0.0.1:{head.port}"
        time.sleep(1)
        _wait_for_nodes(address, 1, 60, nodes)
        nodes.append(Node(tmp_path, "node2", head_port=head.port))
        _wait_for_nodes(address, 2, 60, nodes)
        yield address, nodes
    finally:
        for node in reversed(nodes):
            node.kill()
        for node in nodes:
            node.remove()
        leftover = [pid for node in nodes for pid in node.pids()]
        assert not leftover, f"Ray processes left running: {[_cmdline(p)[:80] for p in leftover]}"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the node's processes")
@pytest.mark.timeout(240)
def test_a_sweep_on_two_nodes_survives_losing_a_node_and_records_every_run_once(tmp_path, two_nodes):
    address, (head, node2) = two_nodes
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "phenolab.cli", "sweep", "condensation", "--axis", "width=20,30,40,50",
           "--seeds", "1", "train.steps=6000", "--executor", "ray", "--address", address, "--store", str(store)]
    env = {**os.environ, **AUTH_ENV, "PHENOLAB_THREADS": "1"}
    env.pop(TEST_KILL_ENV, None)
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline, busy = time.monotonic() + 90, False
        while time.monotonic() < deadline and driver.poll() is None and not busy:
            time.sleep(0.2)  # until node 2 runs a task: a worker titled ray::run_ray_job in its session
            busy = any("run_ray_job" in _cmdline(pid) for pid in node2.pids())
        assert busy, f"node 2 never ran a task (driver {driver.poll()})"
        node2.kill()
        out, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    (tmp_path / "driver.log").write_text(out)  # kept for a look after a failure
    assert driver.returncode in (0, 1), out[-3000:]  # 1: a point's verdict failed; not a crash
    with Store(store, readonly=True) as st:
        runs = train_runs(st)  # exactly once per config
        assert len(runs) == 8, out[-3000:]
        statuses = Counter(r["status"] for r in runs.values())
        assert set(statuses) <= {"done", "failed"} and "running" not in statuses
        for r in runs.values():
            if r["status"] == "failed":
                assert r["error"].startswith("worker died"), r["error"]
        assert statuses["done"] >= 6, statuses  # only the group lost with the node can have run out of tries
        assert st.list_runs(kind="sweep")[0]["status"] == "done"
