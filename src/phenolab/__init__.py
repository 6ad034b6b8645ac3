"""phenolab: a laboratory for the phenomena of neural-network training.

The Python API in one screen::

    import phenolab
    outcome = phenolab.run("f-principle", overrides={"train": {"steps": 500}})
    print(outcome.verdict["passed"], outcome.verdict["reason"])
    runs = phenolab.load_runs(kind="train")           # pandas DataFrame, one row per run
    curves = phenolab.load_metrics(outcome.summary["runs"]["seed=0"])  # index step, one column per metric

Names are imported lazily, so `import phenolab.config` does not pay for torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Mapping

__version__ = "0.1.0"

_LAZY = {
    "Store": "phenolab.store", "StoreError": "phenolab.store", "load_runs": "phenolab.store",
    "load_metrics": "phenolab.store", "Recorder": "phenolab.train.recorder",
    "ConfigError": "phenolab.config", "Task": "phenolab.tasks.base",
}

if TYPE_CHECKING:  # pragma: no cover
    from phenolab.config import ConfigError
    from phenolab.store import Store, StoreError, load_metrics, load_runs
    from phenolab.tasks.base import Task
    from phenolab.train.recorder import Recorder


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'phenolab' has no attribute {name!r}")


def run(name: str, *, preset: str = "quick", overrides: Mapping[str, Any] | None = None,
        store: Any = None, force: bool = False, executor: Any = "inline", jobs: int | None = None,
        attempts: int | None = None) -> Any:
    """Run catalog experiment `name` into `store` (a Store, a path, or None for the default);
    returns an `Outcome` with run_id, verdict (dict), summary and passed.

    `executor` trains the runs' ensemble groups: ``"inline"`` (this process), ``"local"`` (`jobs`
    worker processes, default one per CPU; a group whose worker dies is tried `attempts` times,
    default 3), or an executor object of `phenolab.execution.executors` (then left open for reuse)."""
    from phenolab.config import ConfigError
    from phenolab.execution import run_experiment
    from phenolab.execution.executors import make_executor
    from phenolab.store import Store

    owned = isinstance(executor, str)
    if not owned and (jobs is not None or attempts is not None):
        raise ConfigError(["jobs, attempts: set them when making the executor object, or pass its name"])
    pool = make_executor(executor, jobs=jobs, attempts=attempts) if owned else executor
    try:
        if isinstance(store, Store):
            return run_experiment(name, store=store, preset=preset, overrides=overrides, force=force, executor=pool)
        with Store(store) as st:
            return run_experiment(name, store=st, preset=preset, overrides=overrides, force=force, executor=pool)
    finally:
        if owned:
            pool.close()


__all__ = ["ConfigError", "Recorder", "Store", "StoreError", "Task", "__version__", "load_metrics",
           "load_runs", "run"]
