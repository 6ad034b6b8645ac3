"""Sweeps: many runs of one experiment over axes of its config, trained by an executor."""

from phenolab.sweep.executors import (Executor, InlineExecutor, Job, JobFailed, LocalExecutor, executor_names,
                                      make_executor, register_executor)
from phenolab.sweep.spec import (DEFAULT_MAX_POINTS, Axis, SweepPoint, SweepSpec, config_paths, expand,
                                 group_points, load_sweep, parse_axis, parse_values, sweep_from_cli, sweep_id)

__all__ = ["DEFAULT_MAX_POINTS", "Axis", "Executor", "InlineExecutor", "Job", "JobFailed", "LocalExecutor",
           "SweepPoint", "SweepSpec", "config_paths", "executor_names", "expand", "group_points", "load_sweep",
           "make_executor", "parse_axis", "parse_values", "register_executor", "sweep_from_cli", "sweep_id"]
