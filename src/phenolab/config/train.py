"""`TrainSpec`: optimizer, loss, steps, probe schedule, divergence and time limits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from phenolab.config.families import ObjectiveSpec, Spec
from phenolab.config.fields import NonNegFloat, PosFloat, PosInt
from phenolab.config.objectives import MSESpec


class TrainSpec(Spec):
    """How to train: optimizer, loss, steps, probe schedule, divergence and time limits.

    ``weight_decay``: decoupled (AdamW) with adam, added to the gradient (lambda theta) with sgd
    and gd. ``warmup``: steps of linear warm-up of the learning rate from lr/warmup to lr;
    ``schedule``: ``constant`` after it, or ``cosine`` decay to 0 at the last step.
    ``clip_norm``: each run's gradient is rescaled to this Euclidean norm when it is larger
    (torch's ``clip_grad_norm_``). ``device``: ``cpu``, ``cuda``, or ``auto`` (cuda when there
    is one); probes always evaluate on the CPU. ``engine``: who trains the run
    (`phenolab.train.engines`): ``auto`` picks from the config alone, so that one config hash
    always has one engine: ``ensemble`` for a stackable model kind with an objective the
    stacked paths compute, else ``plain``.
    """

    optimizer: Literal["gd", "sgd", "adam"] = "adam"
    lr: PosFloat = 1e-3
    steps: Annotated[int, Field(ge=0)] = 1000  # 0: only the probes at initialization
    batch_size: PosInt | None = None  # None = full batch
    batch_seed: int | None = None  # seed of the minibatch order; None = the run's seed (per-run orders)
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    loss: ObjectiveSpec = MSESpec()
    probe_every: PosInt = 10
    max_loss: PosFloat = 1e8  # a loss above this (or NaN/inf) stops the run as `diverged`
    time_limit: PosFloat | None = None  # seconds; the run stops as `failed` with the reason
    dtype: Literal["float32", "float64"] = "float32"
    stop_ratio: PosFloat | None = None  # stop (done) once loss <= stop_ratio * initial loss
    restart_on_jump: PosFloat | None = None  # loss up by more than this fraction in one step: restart from init at lr/2
    max_restarts: Annotated[int, Field(ge=0)] = 10
    # Options of every torch trainer, each left out of the canonical JSON at its default so that
    # older configs keep their hash (`phenolab.train.schedule`, `phenolab.train.engines`).
    weight_decay: NonNegFloat = Field(default=0.0, exclude_if=lambda v: v == 0)
    warmup: Annotated[int, Field(ge=0)] = Field(default=0, exclude_if=lambda v: v == 0)
    schedule: Literal["constant", "cosine"] = Field(default="constant", exclude_if=lambda v: v == "constant")
    clip_norm: PosFloat | None = Field(default=None, exclude_if=lambda v: v is None)
    device: Literal["cpu", "cuda", "auto"] = Field(default="cpu", exclude_if=lambda v: v == "cpu")
    engine: Literal["auto", "plain", "ensemble"] = Field(default="auto", exclude_if=lambda v: v == "auto")

    @model_validator(mode="after")
    def _optimizer_options(self) -> TrainSpec:
        if self.optimizer == "gd" and self.batch_size is not None:
            raise ValueError(f"train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for "
                             f"minibatches, got batch_size={self.batch_size}")
        if self.momentum > 0 and self.optimizer == "adam":
            raise ValueError(f"train.momentum: only used by optimizer=sgd or gd, got momentum={self.momentum} "
                             f"with optimizer={self.optimizer!r}")
        return self
