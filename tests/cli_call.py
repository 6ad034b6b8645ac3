"""Run the `phenolab` command in this process, as the CLI tests do."""

from __future__ import annotations

import sys

from phenolab import cli


def call(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``phenolab ARGS`` (captured by pytest's `capsys`)."""
    old = sys.argv
    sys.argv = ["phenolab", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err
