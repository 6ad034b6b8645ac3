"""`Verdict`: whether a run shows the paper's effect, with the measured numbers beside the thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from phenolab.experiments.analysis import fmt

Op = Literal["<", "<=", ">", ">=", "=="]


@dataclass(frozen=True)
class Check:
    """One comparison ``measured OP threshold``; ``paper`` is the paper's own number, if any."""

    name: str
    measured: float | None
    op: Op
    threshold: float
    paper: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        m = self.measured
        if m is None or m != m:  # missing or NaN never passes
            return False
        return {"<": m < self.threshold, "<=": m <= self.threshold, ">": m > self.threshold,
                ">=": m >= self.threshold, "==": m == self.threshold}[self.op]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class Verdict:
    """Passed iff every check passed and nothing failed (diverged, timed out) on the way."""

    experiment: str
    checks: tuple[Check, ...]
    source: str = ""
    failure: str = ""  # a reason that fails the verdict regardless of the checks
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failure and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def reason(self) -> str:
        if self.failure:
            return self.failure
        failed = [c for c in self.checks if not c.passed]
        if not self.checks:
            return "no checks were evaluated"
        if not failed:
            return "all checks passed"
        return "failed: " + "; ".join(f"{c.name} = {fmt(c.measured)} (need {c.op} {fmt(c.threshold)})"
                                      for c in failed)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "passed": self.passed, "reason": self.reason,
                "source": self.source, "failure": self.failure,
                "checks": [c.to_dict() for c in self.checks], "details": self.details}
