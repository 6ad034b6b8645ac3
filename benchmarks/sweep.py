"""Benchmark: a sweep on each executor (inline, local, ray), wall time and overhead per task.

    python benchmarks/sweep.py                 # phase-diagram quick x lr_scale=0.25,0.5 (minutes)
    python benchmarks/sweep.py --small         # widths 100, 400 and 4000 steps: a smoke run
    python benchmarks/sweep.py --seeds 3       # three times the runs in the same 4 tasks
    python benchmarks/sweep.py --jobs 4 --executors inline,local
    python benchmarks/sweep.py --executors ray --address auto   # a cluster started with `ray start`

Workload: the README's sweep, ``phenolab sweep phase-diagram --quick --axis lr_scale=0.25,0.5``:
4 phase points x 4 widths (100 ... 6400) x 1 seed per lr_scale, 32 training runs, GD until the
loss falls to 1e-4 of its start (at most 20000 steps). Runs of one width form one ensemble
group (points and lr_scales share it), so the sweep is 4 tasks of very different sizes.

Each executor runs the same sweep into a fresh store, in this one process, one after another
(the driver's imports and first-use costs are paid before the first timing). ``ray`` is a private
local Ray instance (``ray.init(address="local")``, `--jobs` CPUs, a 100 MB object store) unless
`--address` names a cluster; without Ray installed its row says so. Printed per executor:

- start: entering the executor before the sweep (Ray: starting or joining Ray; local workers
  start lazily, inside the first task's overhead);
- wall: the whole `run_sweep` call (planning, training, recording, analysis, figures);
- compute: the tasks' own time, summed (in the worker; inline: the group's training with its
  live store writes);
- overhead/task: the driver's view of each task, from dispatch to result back, minus its
  compute, averaged (the first task of each worker carries the worker's start-up: a fresh
  interpreter importing torch), and its median (the steady state: pickling and transfer); the
  replay into the store is shown apart as record/task;
- slot idle/task: (slots x wall - compute) / tasks, the slot time not spent computing;
- speed-up: inline wall / this wall.

The final losses of every run are compared with the inline run's (largest relative difference).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from phenolab.config import ConfigError, parse_overrides
from phenolab.execution.executors import Executor, make_executor
from phenolab.experiments.runner import prepare
from phenolab.store import Store
from phenolab.sweep import sweep_from_cli
from phenolab.sweep.run import run_sweep
from phenolab.threads import set_threads


def one(name: str, jobs: int | None, spec, root: Path, address: str | None = None) -> dict:
    """Run the sweep on executor `name` into a fresh store; its timings and final losses."""
    options = {}
    if name == "ray":
        options = {"address": address} if address else {"object_store_memory": 100 * 1024 * 1024}
    try:
        executor: Executor = make_executor(name, jobs=jobs if name != "inline" else None, **options)
        entering = time.perf_counter()
        executor.__enter__()
        start = time.perf_counter() - entering
    except ConfigError as exc:
        return {"name": name, "error": str(exc)}
    with Store(root / f"{name}.sqlite") as st, executor:
        started = time.perf_counter()
        run_sweep(spec, store=st, executor=executor)
        wall = time.perf_counter() - started
        losses = {r["config_hash"]: (r["summary"] or {}).get("final_loss") for r in st.list_runs(kind="train")}
        statuses = sorted({r["status"] for r in st.list_runs(kind="train")})
    stats = executor.stats
    compute = sum(s.compute_s for s in stats)
    slots = getattr(executor, "jobs", 1)
    slots = slots or max(1, len({s.worker for s in stats}))  # a cluster with no --jobs: the workers seen
    return {"name": name, "jobs": min(slots, len(stats)) if stats else slots, "start": start, "wall": wall,
            "compute": compute,
            "tasks": len(stats), "overhead": sum(s.wall_s - s.compute_s for s in stats) / max(1, len(stats)),
            "overhead_median": statistics.median([s.wall_s - s.compute_s for s in stats]) if stats else math.nan,
            "record": sum(s.record_s for s in stats) / max(1, len(stats)),
            "idle": (min(slots, len(stats)) * wall - compute) / max(1, len(stats)),
            "losses": losses, "statuses": statuses, "executor": repr(executor)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="widths 100, 400 and train.steps=4000: a smoke run")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the pool executors (default 2)")
    parser.add_argument("--executors", default="inline,local,ray", help="comma-separated (default inline,local,ray)")
    parser.add_argument("--axis", default="lr_scale=0.25,0.5", help="the sweep's axis (default lr_scale=0.25,0.5)")
    parser.add_argument("--address", default=None, help="for ray: a cluster (auto or HOST:PORT; default: a local Ray)")
    parser.add_argument("--seeds", default=None,
                        help="n or a list, as `phenolab sweep --seeds` (default: the preset's, 1)")
    args = parser.parse_args()
    set_threads(1)  # the driver, as the command line runs it; pool workers get cores // jobs
    base = ["widths=[100,400]", "train.steps=4000"] if args.small else []
    spec = sweep_from_cli("phase-diagram", [args.axis], args.seeds, base, "quick")
    prepare("phase-diagram", "quick", parse_overrides(base))  # warm the driver: imports, first task and model
    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    print(f"phase-diagram quick sweep --axis {args.axis}{f' --seeds {args.seeds}' if args.seeds else ''}"
          f"{' (small)' if args.small else ''}; "
          f"{os.cpu_count()} CPUs, torch threads 1 in the driver, {platform.processor() or platform.machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(one(name, args.jobs, spec, Path(tmp), args.address))
            print(f"  {name}: done", flush=True)
    reference = next((r for r in rows if r["name"] == "inline" and "error" not in r), None)
    header = (f"{'executor':<8} {'jobs':>4} {'tasks':>5} {'start s':>7} {'wall s':>8} {'compute s':>9} "
              f"{'overhead/task s':>15} "
              f"{'(median)':>8} {'record/task s':>13} {'slot idle/task s':>16} {'speed-up':>8} {'max rel diff':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<8} {'-':>4} {'-':>5} {'n/a: ' + r['error']}")
            continue
        speed = reference["wall"] / r["wall"] if reference else math.nan
        diff = math.nan
        if reference:
            pairs = [(a, reference["losses"].get(h)) for h, a in r["losses"].items()]
            diff = max((abs(a - b) / max(abs(b), 1e-300) for a, b in pairs if a is not None and b is not None),
                       default=math.nan)
        print(f"{r['name']:<8} {r['jobs']:>4} {r['tasks']:>5} {r['start']:>7.1f} {r['wall']:>8.1f} "
              f"{r['compute']:>9.1f} "
              f"{r['overhead']:>15.2f} {r['overhead_median']:>8.2f} {r['record']:>13.3f} {r['idle']:>16.2f} "
              f"{speed:>8.2f} {diff:>12.2g}")
    for r in rows:
        if "error" not in r and r["statuses"] != ["done"]:
            print(f"note: {r['name']}: training runs ended {', '.join(r['statuses'])}")


if __name__ == "__main__":
    main()
