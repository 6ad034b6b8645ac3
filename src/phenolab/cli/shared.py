"""What the commands share: the Typer `app`, the consoles, exit codes, the common options,
`BadInput`, and the helpers that turn options into a store, overrides, an executor and a preset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from phenolab.config import ConfigError, load_yaml, merge, parse_overrides

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A laboratory for the phenomena of neural-network training.")
# off a terminal (logs, pipes) rich would wrap at 80 columns and cut names short: allow wider lines
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

StoreOption = typer.Option(
    None, "--store", help="SQLite store file (default: $PHENOLAB_STORE or ./phenolab-runs/phenolab.sqlite).")
ExecutorOption = typer.Option(
    None, "--executor", metavar="NAME",
    help="Where the groups of runs train: inline (this process, one after another), local (a pool of worker "
         "processes) or ray (Ray tasks; pip install 'phenolab[ray]'). Default: local for sweep and verify; for run, "
         "local for an experiment made of several measurements, else inline (local when --jobs is given).")
JobsOption = typer.Option(None, "--jobs", "-j", metavar="N",
                          help="Worker processes for --executor local (default: the CPUs this process may use).")
AttemptsOption = typer.Option(None, "--attempts", metavar="N",
                              help="Tries per group whose worker dies, for --executor local or ray (default: 3); "
                                   "then its runs are failed.")
AddressOption = typer.Option(
    None, "--address", metavar="auto|HOST:PORT",
    help="For --executor ray: the Ray cluster to run on (auto: the one `ray start` began on this machine; HOST:PORT: "
         "its head). Default: a private Ray instance on this machine, stopped at the end.")


class BadInput(Exception):
    """Raised inside commands for input problems; printed as one line, exit code 2."""


def _open_store(path: Optional[Path], readonly: bool = False) -> Any:
    from phenolab.store import Store

    return Store(path, readonly=readonly)


def _overrides(items: list[str], config_file: Optional[Path]) -> dict[str, Any]:
    base = load_yaml(config_file) if config_file else {}
    return merge(base, parse_overrides(items))


def _executor(name: Optional[str], jobs: Optional[str], attempts: Optional[str], default: str,
              address: Optional[str] = None) -> Any:
    """The executor the options ask for (`--jobs` alone means local); bad values are one-line bad input."""
    from phenolab.execution.executors import make_executor

    n_jobs, n_attempts = _count("--jobs", jobs), _count("--attempts", attempts)
    chosen = name if name is not None else ("local" if n_jobs is not None else default)
    if address is not None and chosen != "ray":
        raise BadInput(f"--address: only with --executor ray (a Ray cluster), not with the {chosen} executor")
    options = {} if address is None else {"address": address}
    try:
        return make_executor(chosen, jobs=n_jobs, attempts=n_attempts, **options)
    except ConfigError as exc:
        raise BadInput(f"--{exc}") from None


def _count(flag: str, raw: Optional[str]) -> Optional[int]:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise BadInput(f"{flag}: must be a positive integer, got {raw!r}")
    return value


def _preset(quick: bool, full: bool) -> str:
    if quick and full:
        raise BadInput("--quick and --full: choose one")
    return "full" if full else "quick"


def _write_user_file(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise BadInput(f"--out/--report {path}: cannot write ({exc.strerror})") from None
    return path
