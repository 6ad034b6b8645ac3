"""Whether the process that owns a 'running' run is still there (for marking crashed runs)."""

from __future__ import annotations

import functools
import os
import socket
from datetime import datetime

from phenolab.store.encoding import parse_iso

# A run on another host is presumed dead after this long without a heartbeat.
STALE_AFTER_S = 3600.0


@functools.lru_cache(maxsize=1)
def hostname() -> str:
    """This machine's host name, as recorded with each run."""
    return socket.gethostname()


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, or None if unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def process_start(pid: int) -> str | None:
    """An identifier of when process `pid` started (``<boot id>:<ticks>``), or None off Linux."""
    stat = _proc_stat(pid)
    if stat is None:
        return None
    return f"{_boot_id()}:{stat[1]}"


def pid_alive(pid: int) -> bool | None:
    """True if `pid` exists (and is not a zombie), False if not, None where it cannot be checked."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    stat = _proc_stat(pid)
    if stat is not None and stat[0] in ("Z", "X"):
        return False
    return True


def owner_gone(
    *, pid: int | None, host: str | None, proc_start: str | None, last_seen: str, now: datetime
) -> bool:
    """Whether the process recorded for a 'running' run has ended without finishing it.

    Same host: the pid is gone, or it now belongs to a process with another start time (pid
    reuse). Another host, or no way to check: no heartbeat for `STALE_AFTER_S` seconds.
    """
    if host == hostname() and pid is not None:
        alive = pid_alive(pid)
        if alive is False:
            return True
        if alive is True:
            if proc_start is None:
                return False
            current = process_start(pid)
            return current is not None and current != proc_start
    return (now - parse_iso(last_seen)).total_seconds() > STALE_AFTER_S
