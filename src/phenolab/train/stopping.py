"""The stopping rules of a run, written once and applied by every trainer, member by member.

Per step, after the loss of the step is known (before the update), in this order:

1. NaN, inf or a loss above ``train.max_loss`` -> ``diverged``;
2. a loss above (1 + ``train.restart_on_jump``) x the previous step's -> restart: initial weights,
   half the learning rate, a fresh optimizer, no update this step (at most ``max_restarts`` times;
   the phase-diagram code's rule, Luo et al. 2021, arXiv:2007.07497);
3. a loss <= ``train.stop_ratio`` x the first loss -> ``done`` early (after the last probes);
4. after the update: more than ``train.time_limit`` seconds since the start -> ``failed``.

After the last step, the full-batch loss decides between ``done`` and ``diverged`` (rule 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from phenolab.config import TrainSpec

Action = Literal["go", "restart", "stop", "diverged"]


@dataclass
class Watch:
    """One run's stopping state: its learning rate (halved by restarts), restarts, first and
    previous loss. `check` applies rules 1-3, `late` rule 4, `final` the end-of-training rule."""

    spec: TrainSpec
    lr: float
    restarts: int = 0
    first_loss: float = math.nan
    previous: float = math.nan

    @classmethod
    def of(cls, spec: TrainSpec) -> Watch:
        return cls(spec, spec.lr)

    def check(self, step: int, value: float) -> tuple[Action, str]:
        """The rule that fires for the loss `value` at `step`, with its reason."""
        tr = self.spec
        if not math.isfinite(value) or value > tr.max_loss:
            return "diverged", f"loss = {value:.4g} at step {step} (bound train.max_loss = {tr.max_loss:g})"
        if tr.restart_on_jump and value > (1 + tr.restart_on_jump) * self.previous and self.restarts < tr.max_restarts:
            self.restarts, self.lr, self.previous = self.restarts + 1, self.lr / 2, math.nan
            return "restart", f"loss jumped at step {step}: restart {self.restarts} at lr {self.lr:g}"
        self.first_loss = value if math.isnan(self.first_loss) else self.first_loss
        self.previous = value
        if tr.stop_ratio is not None and value <= tr.stop_ratio * self.first_loss:
            return "stop", f"loss fell to train.stop_ratio x its initial value at step {step}"
        return "go", ""

    def late(self, elapsed: float, steps_done: int) -> str | None:
        """The time-limit reason once `elapsed` seconds passed the limit, else None."""
        limit = self.spec.time_limit
        if limit is not None and elapsed > limit:
            return f"time limit train.time_limit = {limit:g} s reached after {steps_done} steps"
        return None

    def final(self, value: float) -> tuple[Literal["done", "diverged"], str]:
        """The status after the last step from the full-batch loss `value`."""
        if not math.isfinite(value) or value > self.spec.max_loss:
            return "diverged", f"final loss = {value:.4g} (bound train.max_loss = {self.spec.max_loss:g})"
        return "done", "finished"
