"""The tiny sweep the executor tests train, and a helper that reads its runs back exactly once each."""

from __future__ import annotations

from collections import Counter

from phenolab.store import Store
from phenolab.sweep import sweep_from_cli

# 2 axes x 2 values: 4 points; the width axis makes 2 ensemble groups (the large-init run is
# shared by the two small_gamma points of a width, so 3 training runs per group, 6 in all)
AXES = ["small_gamma=1.5,2", "width=20,30"]


def tiny_sweep(steps: int = 150, axes: list[str] = AXES):
    return sweep_from_cli("condensation", list(axes), seeds=1, base_overrides=[f"train.steps={steps}"])


def train_runs(st: Store) -> dict[str, dict]:
    """Training runs by config hash; fails if a config hash is there twice."""
    runs = st.list_runs(kind="train")
    counts = Counter(r["config_hash"] for r in runs)
    assert set(counts.values()) == {1}, f"doubled runs: {[h for h, n in counts.items() if n > 1]}"
    return {r["config_hash"]: r for r in runs}
