"""How a run's error column keeps an exception: one line."""

from __future__ import annotations

import traceback


def error_line(exc: BaseException) -> str:
    """``Type: message``, first line only (Ctrl-C: ``interrupted by the user (KeyboardInterrupt)``)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by the user (KeyboardInterrupt)"
    return traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]
