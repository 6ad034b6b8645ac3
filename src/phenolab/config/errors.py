"""Configuration errors: `Problem` (one thing wrong with the input) and `ConfigError`."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Iterable


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing.MISSING  # `Problem.value` when no single input value is to blame
_FIELD_AT_START = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (`path`, a dotted config path such as ``model.width``
    or ``probes[0].options.peaks``, or a label such as ``config file x.yaml``), why (`reason`), the
    rejected input `value` when one value is to blame, and the `allowed` names when the input
    was a name (an unknown key). ``str()`` is the one-line message: ``path: reason, got value``."""

    path: str
    reason: str
    value: Any = MISSING
    allowed: tuple[str, ...] | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.reason}" if self.path else self.reason
        if self.value is not MISSING:
            text += f", got {_short(self.value)}"
        if self.allowed:
            text += f" (allowed: {', '.join(self.allowed)})"
        return text

    @classmethod
    def from_text(cls, text: str) -> Problem:
        """A problem given as its one-line text (older callers): ``path: reason`` when the text
        starts with a dotted path, else a problem without a path."""
        match = _FIELD_AT_START.match(text)
        return cls(match.group(1), match.group(2)) if match else cls("", text)


class ConfigError(ValueError):
    """Bad configuration input. `items` are the `Problem`s; `problems` their one-line texts
    (``path: reason, got value``), and `str(err)` those texts joined by ``; ``."""

    def __init__(self, problems: Iterable[Problem | str] | Problem | str):
        if isinstance(problems, (str, Problem)):
            problems = [problems]
        self.items: list[Problem] = [p if isinstance(p, Problem) else Problem.from_text(str(p)) for p in problems]
        self.problems: list[str] = [str(p) for p in self.items]
        super().__init__("; ".join(self.problems))



def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
