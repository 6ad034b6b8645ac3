"""Typed plan items (`Planned`) and the conditions analyses read instead of parsing labels."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

from phenolab.config import ExperimentSpec, RunSpec
from phenolab.experiments.base import (
    Planned,
    RunData,
    Seed,
    by_condition,
    conditions_of,
    planned,
    seeds_plan,
    with_conditions,
)


@dataclass(frozen=True)
class Init:
    regime: str
    gamma: float


def _spec() -> RunSpec:
    return ExperimentSpec(experiment="x").run_spec(0)


def test_planned_is_a_label_spec_pair_for_older_callers():
    spec = _spec()
    item = Planned("small,seed=0", spec, Init("small", 2.0))
    label, got = item
    assert (label, got) == ("small,seed=0", spec) and item[0] == label and item[1] is spec and len(item) == 2
    assert dict([item, ("other", spec)]) == {"small,seed=0": spec, "other": spec}
    assert pickle.loads(pickle.dumps(item)) == item
    assert planned(("other", spec)) == Planned("other", spec, None) and planned(item) is item


def test_conditions_pair_runs_by_label():
    spec = _spec()
    plan = [Planned("a", spec, Init("small", 2.0)), Planned("b", spec, Init("large", 0.5)), ("c", spec)]
    assert conditions_of(plan) == {"a": Init("small", 2.0), "b": Init("large", 0.5), "c": None}
    runs = [RunData(lab, i, spec, "done", None, store=None) for i, lab in enumerate(["b", "a", "c", "z"])]
    typed = with_conditions(runs, conditions_of(plan))
    assert [r.condition for r in typed] == [Init("large", 0.5), Init("small", 2.0), None, None]
    assert runs[0].condition is None  # the runner's objects are left as they were
    assert by_condition(typed) == {Init("large", 0.5): typed[0], Init("small", 2.0): typed[1]}


def test_the_default_plan_gives_seeds():
    cfg = ExperimentSpec(experiment="x", seeds=[0, 3])
    assert [(p.label, p.condition) for p in seeds_plan(cfg)] == [("seed=0", Seed(0)), ("seed=3", Seed(3))]
