"""The execution room: who trains and measures, and the store bookkeeping of it.

`orchestrator` runs experiments and sweep points in one sequence; `groups` reuses, claims, groups
and records training runs; `measure` runs computations; `executors` (inline, local, Ray) run the
jobs; `jobs` is the worker's side. Imports go one way: this room uses the experiments, the
trainers and the store; nothing below it imports it.
"""

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
from phenolab.execution.orchestrator import run_experiment, run_points, run_prepared

__all__ = ["Executor", "InlineExecutor", "Job", "JobFailed", "LocalExecutor", "executor_names", "make_executor",
           "register_executor", "run_experiment", "run_points", "run_prepared"]
