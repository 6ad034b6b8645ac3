"""A small fake sweep written through the Store API (no training), for summary, filter and export tests."""

from __future__ import annotations

import math
from typing import Any

from phenolab.store import Store

SWEEP_ID = "toy-sweep"
WIDTHS = (100, 200)


def train_config(width: Any, seed: int, gamma: float = 1.5) -> dict[str, Any]:
    return {"model": {"width": width, "depth": None, "activation": "relu", "bias": True,
                      "init": {"gamma": gamma, "std": [0.1, 0.1]}},
            "train": {"lr": 0.1 * (seed + 1), "steps": 3}, "seed": seed,
            "probes": [{"name": "loss", "every": 1, "options": {}}]}


def write_fake_sweep(st: Store, *, finish_sweep: bool = True) -> dict[str, Any]:
    """A sweep over model.width (100, 200) of a toy experiment: two experiment runs, two seeds each,
    and a reference run that point 0 trained and point 1 reuses (listed in both summaries).
    Seed 1 at width 200 diverges: its last loss is NaN."""
    sweep = st.create_run(kind="sweep", name="toy", config={"experiment": "toy", "preset": "quick",
                                                            "axis_values": {"model.width": list(WIDTHS)},
                                                            "n_points": 2},
                          config_hash=SWEEP_ID, sweep_id=SWEEP_ID)
    ids: dict[str, Any] = {"sweep": sweep, "experiments": [], "train": {}, "points": []}
    reference = None
    for index, width in enumerate(WIDTHS):
        exp = st.create_run(kind="experiment", name="toy", label="quick", sweep_id=SWEEP_ID,
                            config={"experiment": "toy", "model": {"width": width}, "seeds": [0, 1]},
                            config_hash=f"exp-{width}")
        runs: dict[str, int] = {}
        if reference is None:
            reference = st.create_run(kind="train", name="toy", config=train_config(50, 0, gamma=0.5),
                                      config_hash="reference", parent_id=exp, label="reference")
            st.log_metrics(reference, [(s, "loss", 2.0 / (s + 1)) for s in range(4)])
            st.finish_run(reference, "done")
        runs["reference"] = reference
        for seed in (0, 1):
            run = st.create_run(kind="train", name="toy", config=train_config(width, seed),
                                config_hash=f"t-{width}-{seed}", parent_id=exp, label=f"seed={seed}")
            diverged = width == 200 and seed == 1
            rows = [(s, "loss", math.nan if diverged and s == 2 else 1.0 / (s + 1 + seed + width / 100))
                    for s in range(3)]
            rows += [(s, "frequency/rel_err_0", 0.5 ** s * (seed + 1)) for s in (0, 2)]  # probed every 2 steps
            st.log_metrics(run, rows)
            st.finish_run(run, "diverged" if diverged else "done", error="loss is NaN" if diverged else None)
            runs[f"seed={seed}"] = run
            ids["train"][(width, seed)] = run
        passed = width == 200
        checks = [{"name": "ratio", "measured": width / 50, "op": ">", "threshold": 3.0, "paper": "4",
                   "note": "", "passed": width / 50 > 3.0},
                  {"name": "gap", "measured": None, "op": "<", "threshold": 0.1, "paper": "", "note": "",
                   "passed": False}]
        st.finish_run(exp, "done", summary={"ratio": width / 50, "runs": runs},
                      verdict={"experiment": "toy", "passed": passed, "reason": "r", "checks": checks})
        ids["experiments"].append(exp)
        ids["points"].append({"index": index, "values": {"model.width": width}, "run_id": exp, "passed": passed})
    ids["reference"] = reference
    if finish_sweep:
        st.finish_run(sweep, "done", summary={"points": ids["points"]})
    return ids

