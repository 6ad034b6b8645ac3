"""The tiny sweep the executor tests train, and a helper that reads its runs back exactly once each."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

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


def assert_same_runs(st: Store, reference: Path) -> None:
    """Every training run of `st` equals the run with its config hash in the `reference` store:
    status, label, final loss, metric series and the condensation artifact (to 1e-6)."""
    mine = train_runs(st)
    with Store(reference, readonly=True) as ref_st:
        theirs = train_runs(ref_st)
        assert set(mine) == set(theirs) and len(mine) == 6
        for h, run in mine.items():
            ref = theirs[h]
            assert run["status"] == ref["status"] == "done" and run["label"] == ref["label"]
            assert run["summary"]["final_loss"] == pytest.approx(ref["summary"]["final_loss"], rel=1e-6, abs=1e-12)
            a, b = st.metrics(run["id"]), ref_st.metrics(ref["id"])
            assert list(a["name"]) == list(b["name"]) and list(a["step"]) == list(b["step"])
            np.testing.assert_allclose(a["value"], b["value"], rtol=1e-6, atol=1e-12)
            assert [x["name"] for x in st.artifacts(run["id"])] == [x["name"] for x in ref_st.artifacts(ref["id"])]
            np.testing.assert_allclose(st.load_artifact(run["id"], "condensation/amplitude")["values"],
                                       ref_st.load_artifact(ref["id"], "condensation/amplitude")["values"],
                                       rtol=1e-6, atol=1e-12)


def processes() -> dict[int, list[str]]:
    """Every process as pid -> the fields of /proc/PID/stat after the command name (state, ppid,
    pgrp, session, ...)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            found[int(entry.name)] = stat[stat.rfind(")") + 2:].split()
    return found
