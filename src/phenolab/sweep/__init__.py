"""Sweeps: many runs of one experiment over axes of its config (executors: `phenolab.execution`)."""

from phenolab.sweep.axes import Axis, parse_axis, parse_values
from phenolab.sweep.spec import (
    DEFAULT_MAX_POINTS,
    SweepPoint,
    SweepSpec,
    config_paths,
    expand,
    group_points,
    load_sweep,
    sweep_from_cli,
    sweep_id,
)

__all__ = ["DEFAULT_MAX_POINTS", "Axis", "SweepPoint", "SweepSpec", "config_paths", "expand", "group_points",
           "load_sweep", "parse_axis", "parse_values", "sweep_from_cli", "sweep_id"]
