"""Where the store lives by default."""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV_VAR = "PHENOLAB_STORE"
DEFAULT_RELATIVE_PATH = Path("phenolab-runs") / "phenolab.sqlite"


def default_store_path() -> Path:
    """``$PHENOLAB_STORE`` if set (and not empty), else ``./phenolab-runs/phenolab.sqlite`` under the cwd."""
    env = os.environ.get(STORE_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.cwd() / DEFAULT_RELATIVE_PATH
