"""`ProbeSpec`, `RunSpec` (one training run) and `ExperimentSpec` (a base run, seeds and checks)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from phenolab.config.data import SinesData
from phenolab.config.families import DataSpec, ModelSpec, Spec
from phenolab.config.fields import PosInt, Seeds
from phenolab.config.model import MLPSpec
from phenolab.config.overrides import _set_path
from phenolab.config.train import TrainSpec
from phenolab.config.validation import validate


class ProbeSpec(Spec):
    """A registered probe and its options; ``every`` overrides train.probe_every for this probe;
    ``start``: the first step at which it runs on that schedule (default 0, the initialization;
    e.g. 1 for a costly probe wanted only after training). Every probe runs after the last step."""

    name: str
    every: PosInt | None = None
    start: Annotated[int, Field(ge=0)] = Field(default=0, exclude_if=lambda v: v == 0)
    options: dict[str, Any] = {}


class RunSpec(Spec):
    """One training run: everything that decides its numbers."""

    model: ModelSpec = MLPSpec()
    data: DataSpec = SinesData()
    train: TrainSpec = TrainSpec()
    probes: list[ProbeSpec] = []
    seed: int = 0


class ExperimentSpec(Spec):
    """An experiment: a base run, the seeds to repeat it over, and the verdict's thresholds.

    Experiments subclass this to type their own ``check`` block.
    """

    experiment: str
    preset: str = "custom"
    seeds: Seeds = [0]
    model: ModelSpec = MLPSpec()
    data: DataSpec = SinesData()
    train: TrainSpec = TrainSpec()
    probes: list[ProbeSpec] = []
    check: dict[str, Any] = {}

    def require_probes(self, *names: str) -> None:
        """Raise (inside a validator) if the analysis needs a probe that the config dropped."""
        have = {p.name for p in self.probes}
        missing = [n for n in names if n not in have]
        if missing:
            raise ValueError(f"probes: {self.experiment} needs the probe(s) {', '.join(missing)}; got {sorted(have)}")

    def run_spec(self, seed: int, **changes: Any) -> RunSpec:
        """The training run of this experiment for one seed; `changes` are dotted overrides."""
        base = {
            "model": self.model.model_dump(mode="json"),
            "data": self.data.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "probes": [p.model_dump(mode="json") for p in self.probes],
            "seed": seed,
        }
        for key, value in changes.items():
            _set_path(base, key.split("."), value)
        return validate(RunSpec, base)
