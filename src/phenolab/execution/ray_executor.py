"""The ``ray`` executor: each job (one ensemble group) is a Ray core task; results come back here.

Install with ``pip install 'phenolab[ray]'``; ``make_executor("ray", ...)`` imports this module
(``phenolab --executor ray``). Where Ray runs:

- no address: a private single-machine Ray instance started by this executor,
  ``ray.init(address="local")``: never an existing cluster picked up by accident; shut down
  again in `close`;
- ``address="auto"``: the cluster started with ``ray start`` on this machine;
- ``address="HOST:PORT"`` (or ``ray://HOST:PORT``): that cluster's head (its GCS port).

The executor follows the local one (`phenolab.execution.executors`), whose module docstring holds
the contract:

- a job is a task asking for ``num_cpus=threads``; the worker sets that many torch/BLAS threads
  (`phenolab.execution.jobs.run_ray_job`, the same `run_job` wrapper as local workers), so Ray
  places at most ``cpus // threads`` tasks on a node: workers x threads <= cores;
- at most `jobs` tasks are in flight (default: the cluster's CPUs // threads, looked up as it
  goes, so nodes that join or leave count); runs are opened ``running`` when their task is
  submitted, and a result is recorded by this process only (workers never touch the store);
- Ray's own retries are off (``max_retries=0``): a task whose worker or node dies
  (``WorkerCrashedError``, ``NodeDiedError``, ``ObjectLostError``, Ray's out-of-memory kill, ...)
  is resubmitted by this executor, at most `attempts` tries in all, each death's reason kept; after
  the last its runs are failed with ``worker died N times: ...``. A task whose function raises is
  not retried: its `JobFailed`, then the exception is re-raised, the tasks in flight cancelled;
- Ctrl-C (any exception) cancels the outstanding tasks (``ray.cancel(force=True)``: their worker
  processes are killed) before it propagates; the base class closes their runs ``interrupted``.

Workers must be able to import phenolab: on one machine they run the driver's interpreter (the
venv); on a cluster every node needs the same phenolab and torch installed (or pass a Ray
`runtime_env`). Token authentication: Ray 2.5x+ clusters may require ``RAY_AUTH_MODE=token``
and the same token (``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``) on every node and in the driver.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import ray
import ray.exceptions

from phenolab.config import ConfigError, Problem
from phenolab.execution.executors import (
    DEFAULT_ATTEMPTS,
    IDLE_S,
    Executor,
    Job,
    JobFailed,
    OnDone,
    OnIdle,
    OnStart,
    _Attempts,
    _positive,
    available_cores,
    register_executor,
)

_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")
_PASSED_ENV = ("PHENOLAB_TEST_KILL_WORKER",)  # test-only fault injection (workers.TEST_KILL_ENV) travels along
_CPUS_EVERY_S = 5.0


def check_address(address: str | None) -> str | None:
    """None, ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT``; ConfigError otherwise."""
    if address is None or address in ("auto", "local") or _ADDRESS.fullmatch(address):
        return address
    raise ConfigError([Problem("address",
                               f"auto, HOST:PORT or ray://HOST:PORT (a Ray cluster's head), got {address!r}")])


class RayExecutor(Executor):
    """Jobs as Ray core tasks, on a private local Ray instance (no `address`) or on a cluster."""

    name = "ray"
    in_process = False

    def __init__(self, address: str | None = None, jobs: int | None = None, attempts: int = DEFAULT_ATTEMPTS,
                 threads: int | None = None, *, num_cpus: int | None = None, object_store_memory: int | None = None,
                 runtime_env: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.address = check_address(address)
        self.jobs = None if jobs is None else _positive("jobs", jobs)
        self.attempts = _positive("attempts", attempts)
        local = self.address in (None, "local")
        cores = available_cores()
        if threads is not None:
            self.threads = _positive("threads", threads)
        elif local and self.jobs is not None:
            self.threads = max(1, cores // self.jobs)
        else:
            self.threads = 1  # a cluster's nodes may differ from this one: one thread per task, one task per CPU
        if num_cpus is None and local:
            # this machine: the private instance gets no more CPUs than this process may use
            num_cpus = min(cores, self.jobs * self.threads) if self.jobs is not None else cores
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.runtime_env = runtime_env
        self._started = False  # ray.init called here: ray.shutdown in close
        self._remote: Any = None
        self._cpus = (0.0, 0)  # (when looked up, slots)

    def __repr__(self) -> str:
        return (f"RayExecutor(address={self.address!r}, jobs={self.jobs}, attempts={self.attempts}, "
                f"threads={self.threads})")

    # ------------------------------------------------------------------ Ray's lifetime
    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def start(self) -> None:
        """Start the private instance or connect to the cluster (once; `run_jobs` calls it too).

        A Ray already initialized in this process (by the caller) is used as it is and left up."""
        if self._remote is not None:
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                       "runtime_env": self.runtime_env}
            if self.address in (None, "local"):
                options.update(address="local", num_cpus=self.num_cpus, num_gpus=0,
                               object_store_memory=self.object_store_memory)
            else:
                options.update(address=self.address)
            try:
                ray.init(**{k: v for k, v in options.items() if v is not None})
            except (ConnectionError, TimeoutError, ray.exceptions.RayError, RuntimeError, ValueError) as exc:
                where = ("a local Ray instance" if self.address in (None, "local")
                         else f"the Ray cluster at {self.address}")
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError([Problem("address", f"could not start or reach {where}: {first}")]) from None
            self._started = True
        from phenolab.execution.jobs import run_ray_job

        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        n = str(self.threads)
        env.update(PHENOLAB_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
        self._remote = ray.remote(run_ray_job).options(num_cpus=self.threads, max_retries=0, retry_exceptions=False,
                                                       runtime_env={"env_vars": env})

    def close(self) -> None:
        """Disconnect from Ray, and stop the private instance, if this executor started them (idempotent)."""
        self._remote = None
        if self._started:
            self._started = False
            ray.shutdown()

    # ------------------------------------------------------------------ jobs
    def _slots(self) -> int:
        """Tasks in flight at most: `jobs`, else the cluster's CPUs // threads (looked up every few s)."""
        if self.jobs is not None:
            return self.jobs
        when, slots = self._cpus
        if time.monotonic() - when > _CPUS_EVERY_S:
            try:
                cpus = float(ray.cluster_resources().get("CPU", 0))
            except Exception:  # the GCS is briefly unreachable: keep the last count
                cpus = slots * self.threads
            slots = max(1, int(cpus // self.threads))
            self._cpus = (time.monotonic(), slots)
        return slots

    def run_jobs(self, jobs: Sequence[Job], *, on_start: OnStart | None = None, on_done: OnDone,
                 on_idle: OnIdle | None = None) -> None:
        from phenolab.errors import error_line

        self.start()
        ledger = _Attempts(len(jobs), self.attempts, _died)
        running: dict[Any, int] = {}  # ObjectRef -> job
        last_idle = time.monotonic()
        try:
            while ledger.pending or running:
                while ledger.pending and len(running) < self._slots():
                    i = ledger.send(on_start)
                    running[self._remote.remote(jobs[i].fn, jobs[i].args, i, self.threads)] = i
                finished, _ = ray.wait(list(running), num_returns=1, timeout=IDLE_S)
                if on_idle is not None and time.monotonic() - last_idle >= IDLE_S:
                    on_idle()
                    last_idle = time.monotonic()
                for ref in finished:
                    i = running.pop(ref)
                    try:
                        value, compute_s, pid, node = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the job's function raised: not retried
                        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                        failure = JobFailed(error_line(cause), ledger.tries[i], cause)
                        self._record(jobs[i], ledger, float("nan"), "", on_done, i, failure)
                        raise cause from None
                    except ray.exceptions.RayError as exc:  # its worker or node died, or its result was lost
                        given_up = ledger.died(i, _death(exc))
                        if given_up is not None:
                            self._record(jobs[i], ledger, float("nan"), "", on_done, i, given_up)
                        continue
                    self._record(jobs[i], ledger, compute_s, f"pid {pid} on {node}", on_done, i, value)
        except BaseException:
            self._cancel(list(running))
            raise

    @staticmethod
    def _cancel(refs: list[Any]) -> None:
        """Kill the tasks still in flight (Ctrl-C, or a job raised): their workers are force-stopped."""
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished, or Ray is going down
                pass


# ------------------------------------------------------------------------------ messages
def _death(exc: BaseException) -> str:
    """Why a task was lost: the Ray error's type and what it says of the cause, briefly."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    for pattern in (r"(SIGKILL|SIGSEGV|SIGTERM|killed by the out-of-memory killer|out of memory|OOM)",
                    r"(node [0-9a-f]{6,}[^.]*died[^.]*|node[^.]* (?:has )?died[^.]*)",
                    r"(exit(?:ed)? (?:with )?(?:code|status) -?\d+)"):
        found = re.search(pattern, text, flags=re.IGNORECASE)
        if found:
            return f"{name} ({found.group(1)[:80]})"
    return name


def _died(deaths: list[str]) -> str:
    return f"worker died {len(deaths)} time{'s' if len(deaths) != 1 else ''}: {', '.join(deaths)}"


def _factory(jobs: int | None = None, attempts: int | None = None, address: str | None = None,
             threads: int | None = None, **options: Any) -> Executor:
    return RayExecutor(address=address, jobs=jobs, attempts=DEFAULT_ATTEMPTS if attempts is None else attempts,
                       threads=threads, **options)


register_executor("ray", _factory)
