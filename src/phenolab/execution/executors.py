"""Executors: who trains the ensemble groups of an experiment or a sweep.

`phenolab.execution.groups.train_items` plans the training runs, reuses finished ones and
groups the rest into ensembles; an executor then trains the groups. One interface, several
executors, found by name in a registry (`make_executor`, `register_executor`):

- ``inline``: in this process, one group after another, recording live into the store (the
  path phenolab always had; per-step progress).
- ``local``: a pool of worker processes on this machine (joblib's loky: cloudpickle, fresh
  interpreters), ``jobs`` groups at a time, each worker with ``max(1, cores // jobs)`` threads.
- ``ray``: Ray core tasks, on a private local Ray instance or a cluster
  (`phenolab.execution.ray_executor`, imported when asked for; ``pip install 'phenolab[ray]'``).

The unit of work is a `Job`: a picklable function and its arguments, whose result is plain
picklable data. For training, a job is one group: `train_group_buffered` gets the group's
`RunSpec`s and its task (built once, in the driver), builds the models, trains them into in-memory
`BufferRecorder`s and returns a `GroupResult`. Only the driver (this process) writes the store:

1. a group's runs were claimed ``running`` before it is dispatched
   (`phenolab.execution.groups.train_items`), so the store shows what is in flight and no other
   driver trains the same config hash; they are opened when the group is handed to a worker;
2. when its result comes back, the records are replayed into those runs and they are closed
   with their status (`record_group`); a run is ``done`` only then, exactly once;
3. a worker that dies (SIGKILL, segfault, the out-of-memory killer) fails only its own job
   (one worker per slot, so the culprit is known); the job is resubmitted, at most ``attempts``
   times in all, and after the last its runs are closed ``failed`` with the reason; the others go on;
4. a job whose function raises is not retried (the same inputs raise again): its runs are
   closed ``failed`` with the error, the workers are stopped, the runs of the other groups in
   flight are closed ``interrupted``, and the exception is re-raised, as ``inline`` does;
5. Ctrl-C stops the workers (they ignore SIGINT; the driver terminates them) and closes the
   runs in flight ``interrupted``; everything recorded before stays;
6. a killed driver leaves its in-flight runs ``running``, and the next `Store` open marks them
   ``interrupted`` (its local workers exit within a second: they watch their parent); the same
   command then reuses every ``done`` run by config hash, so no finished run is trained twice.

The worker's side (`train_group_buffered`, `run_job`, `init_worker`) lives in
`phenolab.execution.jobs`, which imports the trainer and not the experiment catalog.
A new executor (Ray) subclasses `Executor`, implements `run_jobs` (dispatch, retries, the
callbacks) and `close`, and calls `register_executor("ray", factory)`; `train_groups`, the
store bookkeeping, comes with the base class. ``in_process`` says whether jobs run in this
process (then they may take unpicklable arguments).
"""

from __future__ import annotations

import os
import re
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from phenolab.config import ConfigError, Problem
from phenolab.errors import error_line
from phenolab.execution.groups import (
    GroupDone,
    ProgressFn,
    TaskCache,
    TrainItem,
    close_runs,
    fail_group,
    group_label,
    open_runs,
    record_group,
    train_group,
)
from phenolab.execution.jobs import init_worker, run_job, train_group_buffered
from phenolab.store import Store
from phenolab.train.recorder import Recorder

DEFAULT_ATTEMPTS = 3
IDLE_S = 30.0
"""How often the driver calls ``on_idle`` (heartbeats of the runs in flight) while jobs run."""



@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args)`` where a worker runs it; `fn` and `args` must pickle
    (module-level functions, plain data), and so must the result. `label` names it in messages."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class JobFailed:
    """Given to ``on_done`` instead of a result: the job was given up after `attempts` tries.

    `error` is the exception the job's function raised (not retried; `run_jobs` re-raises it
    right after this call), or None when its workers died `attempts` times."""

    reason: str
    attempts: int
    error: BaseException | None = None


@dataclass(frozen=True)
class JobStats:
    """How one job went: tries, wall time from its first dispatch to its result back here,
    the function's own time in the worker (last try), the driver's time in ``on_done``, and
    the worker that returned it (``pid N``; ``this process`` inline)."""

    label: str
    attempts: int
    wall_s: float
    compute_s: float
    record_s: float
    failed: bool = False
    worker: str = ""


OnStart = Callable[[int], None]
OnDone = Callable[[int, Any], None]
OnIdle = Callable[[], None]


class _Attempts:
    """The dispatch bookkeeping of a pool executor: the queue of jobs to send, each job's tries,
    the deaths of its workers and when it was first sent."""

    def __init__(self, count: int, attempts: int, died: Callable[[list[str]], str]) -> None:
        self.pending = deque(range(count))
        self.tries = [0] * count
        self.deaths: list[list[str]] = [[] for _ in range(count)]
        self.first_sent = [0.0] * count
        self.attempts = attempts
        self._died = died

    def send(self, on_start: OnStart | None) -> int:
        """The next job to send (``on_start`` before its first try)."""
        i = self.pending.popleft()
        if self.tries[i] == 0:
            self.first_sent[i] = time.perf_counter()
            if on_start is not None:
                on_start(i)
        self.tries[i] += 1
        return i

    def died(self, i: int, death: str) -> JobFailed | None:
        """Job i's worker died: queue it again (None) or, after its last attempt, its `JobFailed`."""
        self.deaths[i].append(death)
        if self.tries[i] < self.attempts:
            self.pending.appendleft(i)
            return None
        return JobFailed(self._died(self.deaths[i]), self.tries[i])


class Executor(ABC):
    """Runs jobs somewhere and hands their results back to this process, one at a time.

    Use as a context manager (or call `close`) to stop workers it keeps between calls.
    `stats` collects a `JobStats` per finished job, across calls.
    """

    name: ClassVar[str]
    in_process: ClassVar[bool]

    def __init__(self) -> None:
        self.stats: list[JobStats] = []

    @abstractmethod
    def run_jobs(self, jobs: Sequence[Job], *, on_start: OnStart | None = None, on_done: OnDone,
                 on_idle: OnIdle | None = None) -> None:
        """Run every job; returns when each has been given to ``on_done``.

        In this process, in any order: ``on_start(i)`` once, before job i first goes to a worker;
        ``on_done(i, value)`` with its result, or with a `JobFailed`; ``on_idle()`` about every
        `IDLE_S` seconds while jobs are in flight. A job whose worker dies is retried; a job
        that raises gets its `JobFailed` and the exception is re-raised. On any exception
        (Ctrl-C included) the workers are stopped before it propagates.
        """

    def close(self) -> None:  # noqa: B027 -- optional hook: a no-op for executors that keep no workers
        """Stop the workers kept between calls (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _record(self, job: Job, ledger: _Attempts, compute_s: float, worker: str, on_done: OnDone, i: int,
                outcome: Any) -> None:
        """Hand job i's `outcome` to ``on_done`` and keep its `JobStats` (wall from its first
        sending, the time ``on_done`` took to record it as ``record_s``)."""
        received = time.perf_counter()
        self.stats.append(JobStats(job.label, ledger.tries[i], received - ledger.first_sent[i], compute_s, 0.0,
                                   isinstance(outcome, JobFailed), worker))
        on_done(i, outcome)
        self.stats[-1] = replace(self.stats[-1], record_s=time.perf_counter() - received)

    def run_calls(self, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...], str]], *,
                  on_start: OnStart | None = None, on_done: OnDone) -> None:
        """`run_jobs` for plain ``(fn, args, label)`` triples (the measurements of an experiment,
        `phenolab.execution.measure.measure_items`)."""
        self.run_jobs([Job(fn, args, label) for fn, args, label in calls], on_start=on_start, on_done=on_done)

    # ------------------------------------------------------------------ training groups
    def train_groups(self, groups: Sequence[Sequence[TrainItem]], store: Store, progress: ProgressFn | None,
                     done: GroupDone, tasks: TaskCache | None = None) -> None:
        """Train each group in a worker (`train_group_buffered`, with its task from `tasks`); record
        it here as it comes back.

        Runs are opened when their group is dispatched and closed when its result (or its failure)
        is recorded; on an exception the runs still open are closed ``interrupted`` (Ctrl-C, or
        another group raised) before it propagates.
        """
        tasks = tasks if tasks is not None else TaskCache()
        jobs = [Job(train_group_buffered, (tuple(item.spec for item in group), tasks.get(group[0].spec)),
                    group_label(group))
                for group in groups]
        open_: dict[int, list[Recorder]] = {}

        def on_start(k: int) -> None:
            open_[k] = open_runs(groups[k], store)

        def on_done(k: int, outcome: Any) -> None:
            if isinstance(outcome, JobFailed):
                data = fail_group(groups[k], open_[k], outcome.reason, store)
            else:
                data = record_group(groups[k], open_[k], outcome, store)
            del open_[k]
            done(k, data)

        def on_idle() -> None:
            for recorders in open_.values():
                for rec in recorders:
                    store.heartbeat(rec.run_id)

        try:
            self.run_jobs(jobs, on_start=on_start, on_done=on_done, on_idle=on_idle)
        except BaseException as exc:
            reason = (error_line(exc) if isinstance(exc, KeyboardInterrupt)
                      else f"stopped because another group raised {error_line(exc)}")
            for recorders in open_.values():
                close_runs(recorders, "interrupted", reason)
            raise


class InlineExecutor(Executor):
    """This process, one job after another; groups record live into the store (`train_group`)."""

    name = "inline"
    in_process = True

    def run_jobs(self, jobs: Sequence[Job], *, on_start: OnStart | None = None, on_done: OnDone,
                 on_idle: OnIdle | None = None) -> None:

        for i, job in enumerate(jobs):
            if on_start is not None:
                on_start(i)
            started = time.perf_counter()
            try:
                value = job.fn(*job.args)
            except Exception as exc:
                self.stats.append(JobStats(job.label, 1, time.perf_counter() - started, float("nan"), 0.0, True,
                                           "this process"))
                on_done(i, JobFailed(error_line(exc), 1, exc))
                raise
            computed = time.perf_counter()
            on_done(i, value)
            finished = time.perf_counter()
            self.stats.append(JobStats(job.label, 1, finished - started, computed - started, finished - computed,
                                       False, "this process"))

    def train_groups(self, groups: Sequence[Sequence[TrainItem]], store: Store, progress: ProgressFn | None,
                     done: GroupDone, tasks: TaskCache | None = None) -> None:
        """Each group here, in order, recording live (the per-step progress of today's path)."""
        tasks = tasks if tasks is not None else TaskCache()
        for k, group in enumerate(groups):
            started = time.perf_counter()
            data = train_group(group, store, progress, tasks.get(group[0].spec))
            wall = time.perf_counter() - started
            self.stats.append(JobStats(group_label(group), 1, wall, wall, 0.0,
                                       any(r.status == "failed" for r in data), "this process"))
            done(k, data)


class LocalExecutor(Executor):
    """A pool of worker processes on this machine: `jobs` slots, one loky worker each.

    One single-worker pool per slot, so a worker's death breaks only its slot and is charged to
    the job it was running; the slot gets a fresh worker. Workers stay up between `run_jobs`
    calls (an experiment after another in ``verify``) until `close`. Each worker ignores SIGINT
    (the driver decides), uses `threads` threads (default ``max(1, cores // jobs)``) and exits
    when the driver dies (a SIGKILLed sweep leaves no worker computing for nobody).
    """

    name = "local"
    in_process = False

    def __init__(self, jobs: int | None = None, attempts: int = DEFAULT_ATTEMPTS, threads: int | None = None) -> None:
        super().__init__()
        cores = available_cores()
        self.jobs = cores if jobs is None else _positive("jobs", jobs)
        self.attempts = _positive("attempts", attempts)
        self.threads = max(1, cores // self.jobs) if threads is None else _positive("threads", threads)
        self._pools: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"LocalExecutor(jobs={self.jobs}, attempts={self.attempts}, threads={self.threads})"

    def run_jobs(self, jobs: Sequence[Job], *, on_start: OnStart | None = None, on_done: OnDone,
                 on_idle: OnIdle | None = None) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool


        ledger = _Attempts(len(jobs), self.attempts, _died)
        free = list(range(min(self.jobs, len(jobs))))[::-1]
        running: dict[Any, tuple[int, int]] = {}  # future -> (slot, job)
        last_idle = time.monotonic()
        try:
            while ledger.pending or running:
                while ledger.pending and free:
                    i, slot = ledger.send(on_start), free.pop()
                    running[self._pool(slot).submit(run_job, jobs[i].fn, jobs[i].args, i)] = (slot, i)
                finished, _ = wait(list(running), timeout=IDLE_S, return_when=FIRST_COMPLETED)
                if on_idle is not None and time.monotonic() - last_idle >= IDLE_S:
                    on_idle()
                    last_idle = time.monotonic()
                for future in finished:
                    slot, i = running.pop(future)
                    free.append(slot)
                    try:
                        value, compute_s, pid = future.result()
                    except BrokenProcessPool as exc:  # the worker died (or a result did not unpickle)
                        self._discard(slot)
                        failure = ledger.died(i, _death(exc))
                        if failure is not None:
                            self._record(jobs[i], ledger, float("nan"), "", on_done, i, failure)
                        continue
                    except Exception as exc:  # the job's function raised: not retried
                        failure = JobFailed(error_line(exc), ledger.tries[i], exc)
                        self._record(jobs[i], ledger, float("nan"), "", on_done, i, failure)
                        raise
                    self._record(jobs[i], ledger, compute_s, f"pid {pid}", on_done, i, value)
        except BaseException:
            self._terminate()
            raise

    def _pool(self, slot: int) -> Any:
        pool = self._pools.get(slot)
        if pool is None:
            from joblib.externals.loky import ProcessPoolExecutor


            n = str(self.threads)
            env = {"PHENOLAB_THREADS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
            pool = ProcessPoolExecutor(max_workers=1, initializer=init_worker, initargs=(self.threads, os.getpid()),
                                       env=env)
            self._pools[slot] = pool
        return pool

    def _discard(self, slot: int) -> None:
        pool = self._pools.pop(slot, None)
        if pool is not None:
            pool.shutdown(wait=True, kill_workers=True)

    def _terminate(self) -> None:
        """Kill every worker now (Ctrl-C, or a job raised)."""
        for slot in list(self._pools):
            self._discard(slot)

    def close(self) -> None:
        """Stop the workers (idle between calls: nothing of theirs is lost; a graceful exit takes seconds)."""
        for slot in list(self._pools):
            self._pools.pop(slot).shutdown(wait=True, kill_workers=True)


# ------------------------------------------------------------------------------ messages
def _death(exc: BaseException) -> str:
    """What killed a worker, from loky's message: ``SIGKILL(-9)``, or its first line."""
    found = re.search(r"exit codes of the workers are \{([^}]*)\}", str(exc))
    if found:
        return found.group(1)
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")


def _died(deaths: list[str]) -> str:
    reason = f"worker died {len(deaths)} time{'s' if len(deaths) != 1 else ''}: exit codes {', '.join(deaths)}"
    if any("SIGKILL" in d for d in deaths):
        reason += " (SIGKILL: killed from outside, often by the out-of-memory killer)"
    return reason


# ------------------------------------------------------------------------------ registry
ExecutorFactory = Callable[..., Executor]
"""Makes an executor: called with keyword arguments ``jobs`` and ``attempts`` (None: its default)."""


def _inline(jobs: int | None = None, attempts: int | None = None) -> Executor:
    if jobs is not None and jobs != 1:
        raise ConfigError([Problem("jobs", "the inline executor trains in this process, one group at a time, "
                                           f"got {jobs} (the local executor has a pool of workers)")])
    if attempts is not None:
        raise ConfigError([Problem("attempts", "the inline executor has no workers to retry (the local executor has)")])
    return InlineExecutor()


def _local(jobs: int | None = None, attempts: int | None = None) -> Executor:
    return LocalExecutor(jobs=jobs, attempts=DEFAULT_ATTEMPTS if attempts is None else attempts)


_REGISTRY: dict[str, ExecutorFactory] = {"inline": _inline, "local": _local}
_LAZY = {"ray": ("phenolab.execution.ray_executor", "ray", "pip install 'phenolab[ray]'")}
"""Executors whose module registers them when imported: name -> (module, package it needs, how to install)."""


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make `factory(jobs=..., attempts=...)` the executor called `name` (e.g. ``ray``)."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"executor name: lower-case letters, digits, '-' and '_', got {name!r}")
    _REGISTRY[name] = factory


def executor_names() -> list[str]:
    """The executors that can be made now, in registration order."""
    return list(_REGISTRY)


def make_executor(name: str = "inline", *, jobs: int | None = None, attempts: int | None = None,
                  **options: Any) -> Executor:
    """The executor called `name` with `jobs` workers and `attempts` tries per job (None: defaults);
    `options` go to its factory as they are (``ray``: ``address``, ``threads``).

    ConfigError, naming the field and what is allowed, for an unknown or not installed name
    or a bad number."""
    if name in _LAZY and name not in _REGISTRY:
        module, package, install = _LAZY[name]
        try:
            import importlib

            importlib.import_module(module)  # registers it
        except ModuleNotFoundError as exc:
            if exc.name != package and not (exc.name or "").startswith(package + "."):
                raise
            raise ConfigError([Problem(f"executor {name}", f"not available yet (available: {', '.join(_REGISTRY)}): "
                                       f"the {package} package is not installed; {install}")]) from None
    available = ", ".join(_REGISTRY)
    if name not in _REGISTRY:
        raise ConfigError([Problem("executor", f"must be one of {available}", name)])
    if jobs is not None:
        _positive("jobs", jobs)
    if attempts is not None:
        _positive("attempts", attempts)
    return _REGISTRY[name](jobs=jobs, attempts=attempts, **options)


def available_cores() -> int:
    """CPUs this process may use (affinity and cgroup quotas counted), via loky's `cpu_count`."""
    from joblib.externals.loky import cpu_count

    return max(1, int(cpu_count()))


def _positive(field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError([Problem(field_name, "must be a positive integer", value)])
    return value
