"""The worker's side of an executor: one training group (or one call) per job, records buffered.

Workers cannot write the store: each run gets a `BufferRecorder` in the worker, and the driver
replays it into the run's recorder (`phenolab.execution.groups.record_group`). `train_group_buffered`
builds the task (unless the driver sent it, built once) and the models from the specs and returns a
picklable `GroupResult`; `run_job` and `init_worker` are the executor's side in the worker. This
module imports the trainer and not the experiment catalog.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from phenolab.config import RunSpec
from phenolab.tasks import make_task
from phenolab.tasks.base import Task
from phenolab.train.engines import dtype_of, train_group
from phenolab.train.loop import TrainResult
from phenolab.train.recorder import BufferRecorder, Recorder


def train_runs(task: Task, specs: Sequence[RunSpec], recorders: Sequence[Recorder | BufferRecorder],
               progress: Callable[..., None] | None = None) -> list[TrainResult]:
    """Train one group on `task` with its engine (`phenolab.train.engines`: the plain loop, the
    ensemble, or the numpy engine). `progress(step, total[, loss])` after every step. The
    results keep no weights."""
    return train_group(task, specs, recorders, progress)


@dataclass(frozen=True)
class GroupResult:
    """What a worker sends back for one group: per run its `TrainResult` and its buffered
    records, in the group's order; the worker's compute time and process id."""

    results: list[TrainResult]
    buffers: list[BufferRecorder]
    compute_s: float
    pid: int


def train_group_buffered(specs: Sequence[RunSpec], task: Task | None = None) -> GroupResult:
    """Train one group where the store cannot be written (a worker process): the models are built
    from the specs (the task too, unless given), records go to `BufferRecorder`s. Picklable in and out."""
    started = time.perf_counter()
    specs = list(specs)
    task = make_task(specs[0].data, specs[0].seed, dtype=dtype_of(specs[0])) if task is None else task
    buffers = [BufferRecorder() for _ in specs]
    results = train_runs(task, specs, buffers)
    return GroupResult(results, buffers, time.perf_counter() - started, os.getpid())


# ------------------------------------------------------------------------------ an executor's worker
TEST_KILL_ENV = "PHENOLAB_TEST_KILL_WORKER"
"""Test-only fault injection, read by executor workers (`run_job`): JSON ``{"jobs": {"K": N, ...},
"dir": PATH}`` makes the worker that starts job K (its index in one `run_jobs` call) SIGKILL
itself the first N times it does (counted by marker files in PATH, which outlive the worker)."""


def init_worker(threads: int, driver: int | None = None) -> None:
    """Once per executor worker process: leave Ctrl-C to the driver, use `threads` threads, load
    the plugins (`phenolab.plugins`), and (POSIX, given the driver's pid) exit as soon as the
    driver is gone, even mid-job: nobody would collect the result, and the next run of the
    command wants the cores."""
    from phenolab.plugins import load_plugins
    from phenolab.threads import set_threads

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    load_plugins()  # the driver's plugins ($PHENOLAB_PLUGINS is inherited): their probes and computations
    if driver is not None and os.name == "posix":
        if os.getppid() != driver:  # the driver died before this worker started
            os._exit(1)
        threading.Thread(target=_watch_driver, args=(driver,), name="phenolab-driver-watch", daemon=True).start()


def _watch_driver(driver: int, every_s: float = 1.0) -> None:
    """Exit this worker once its parent (the driver) is gone: the worker is re-parented then."""
    while True:
        time.sleep(every_s)
        if os.getppid() != driver:
            os._exit(1)


def run_job(fn: Callable[..., Any], args: tuple[Any, ...], index: int) -> tuple[Any, float, int]:
    """Run job `index` in an executor's worker: its result, the function's own wall time, the worker's pid."""
    _test_kill(index)
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started, os.getpid()


_RAY_THREADS: int | None = None


def run_ray_job(fn: Callable[..., Any], args: tuple[Any, ...], index: int,
                threads: int) -> tuple[Any, float, int, str]:
    """`run_job` in a Ray worker (`phenolab.execution.ray_executor`): Ray reuses its worker processes,
    so the first job of each sets its `threads` (Ray gave the task as many CPUs); adds the node's
    address to the result (``pid N on HOST``)."""
    global _RAY_THREADS
    if _RAY_THREADS != threads:
        from phenolab.threads import set_threads

        set_threads(threads)
        _RAY_THREADS = threads
    value, compute_s, pid = run_job(fn, args, index)
    try:
        import ray

        node = ray.util.get_node_ip_address()
    except Exception:  # pragma: no cover - outside Ray, or Ray's internals changed
        import socket

        node = socket.gethostname()
    return value, compute_s, pid, node


def _test_kill(index: int) -> None:
    """Test-only: SIGKILL this worker if `TEST_KILL_ENV` asks for it at job `index` (see there)."""
    raw = os.environ.get(TEST_KILL_ENV)
    if not raw:
        return
    spec = json.loads(raw)
    times = int(spec["jobs"].get(str(index), 0))
    marks = Path(spec["dir"])
    done = len(list(marks.glob(f"killed-{index}-*")))
    if done >= times:
        return
    (marks / f"killed-{index}-{done}").touch()
    os.kill(os.getpid(), signal.SIGKILL)
