"""The `phenolab` command: list, run, verify, sweep, runs, show, report, export.

Exit codes: 0 success, 1 a verdict failed, 2 bad input (unknown experiment, bad config key or
value, unusable store). Bad input is reported in one line and leaves the store unchanged.

Modules: `shared` (the Typer app, consoles, options, `BadInput`), `progress`, `verdicts` (tables
and pages), `run_commands` (list, run, verify, sweep) and `store_commands` (runs, export, show,
report); `main` is the entry point. ``python -m phenolab.cli`` runs it.
"""

from __future__ import annotations

import sys

from phenolab.cli import run_commands, store_commands  # noqa: F401  (registers the commands, in this order)
from phenolab.cli.shared import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, BadInput, app, err, out
from phenolab.config import ConfigError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "BadInput", "app", "err", "main", "out"]


def main() -> None:
    """Entry point: typer handles usage errors (exit 2) and exit codes; input errors print one line."""
    from phenolab.plugins import PluginError
    from phenolab.store import StoreError

    try:
        app()
    except (ConfigError, StoreError, BadInput, PluginError) as exc:
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)  # keep [brackets]
        sys.exit(EXIT_BAD_INPUT)
