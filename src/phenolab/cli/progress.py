"""Progress of training runs on the terminal: a rich bar, or a plain status line off a terminal."""

from __future__ import annotations

import time
from typing import Any

from phenolab.cli.shared import out


class _Progress:
    """A rich progress bar on a terminal; one plain status line every 10 s otherwise."""

    def __init__(self, title: str):
        self.title = title
        self.tty = out.is_terminal
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last = 0.0

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TextColumn("loss {task.fields[loss]}"),
                                 TimeRemainingColumn(), console=out, transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, label: str, step: int, total: int, loss: float) -> None:
        if self._bar is not None:
            key = label
            if key not in self._tasks:
                self._tasks[key] = self._bar.add_task(f"{self.title} {label}", total=total, loss="")
            if step % 10 == 0 or step == total:
                self._bar.update(self._tasks[key], completed=step, loss="" if loss != loss else f"{loss:.3g}")
            return
        now = time.monotonic()
        if now - self._last > 10 or step == total:
            self._last = now
            tail = "" if loss != loss else f" loss {loss:.4g}"
            print(f"[{self.title} {label}] step {step}/{total}{tail}", flush=True)
