"""Measurement runs: an experiment's computations, each stored as a run of kind ``measure``.

A computation (`phenolab.experiments.base.Computation`) is reused by its config hash and the
code version of its module (`phenolab.versioning.measure_version`); the others run where the
executor runs jobs (here, one after another, without one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from phenolab import versioning
from phenolab.errors import error_line
from phenolab.execution.groups import GroupExecutor, ProgressFn
from phenolab.experiments.base import RESULT_ARTIFACT, RunData, compute_safely
from phenolab.experiments.runner import Prepared
from phenolab.store import Store


def measure_items(prepared: Prepared, parent: int, store: Store, *, force: bool = False,
                  progress: ProgressFn | None = None, executor: GroupExecutor | None = None) -> list[RunData]:
    """Run (or reuse) the experiment's computations, each stored as a ``measure`` run under `parent`.

    `executor` runs them (its workers, in parallel; None: here, one after another). A computation
    that raises is stored ``failed`` with the error and the others go on (the verdict then names
    it, `failed_runs`); Ctrl-C stores the ones in flight ``interrupted`` and re-raises."""
    name, comps = prepared.experiment.name, prepared.computations
    versions = [versioning.measure_version(comp.compute) for comp in comps]
    out: dict[int, RunData] = {}
    todo = []
    for k, comp in enumerate(comps):
        done = None if force else store.find_done("measure", name, comp.config_hash, versions[k])
        if done is not None:
            out[k] = RunData(comp.label, done, None, "done", None, store)
        else:
            todo.append(k)
    open_: dict[int, int] = {}

    def on_start(j: int) -> None:
        comp = comps[todo[j]]
        open_[j] = store.create_run(kind="measure", name=name, config=comp.config, config_hash=comp.config_hash,
                                    parent_id=parent, label=comp.label, code_version=versions[todo[j]])

    def on_done(j: int, outcome: Any) -> None:
        run, comp = open_.pop(j), comps[todo[j]]
        status, value = outcome if isinstance(outcome, tuple) else ("error", outcome.reason)
        if status == "ok":
            arrays = {key: np.asarray(v) for key, v in value.items()}
            store.save_artifact(run, RESULT_ARTIFACT, arrays)
            scalars = {key: float(a) for key, a in arrays.items() if a.ndim == 0 and a.dtype.kind in "biuf"}
            store.finish_run(run, "done", summary=scalars)
            out[todo[j]] = RunData(comp.label, run, None, "done", None, store)
        else:
            store.finish_run(run, "failed", error=value)
            out[todo[j]] = RunData(comp.label, run, None, "failed", value, store)
        if progress is not None:
            progress("measuring", len(out), len(comps), math.nan)

    calls = [(compute_safely, (comps[k].compute, comps[k].stored_params, comps[k].params_type), comps[k].label)
             for k in todo]
    try:
        if executor is None:
            for j, (fn, args, _) in enumerate(calls):
                on_start(j)
                on_done(j, fn(*args))
        elif calls:
            executor.run_calls(calls, on_start=on_start, on_done=on_done)
    except BaseException as exc:
        for run in open_.values():
            store.finish_run(run, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                             error=error_line(exc))
        raise
    return [out[k] for k in range(len(comps))]
