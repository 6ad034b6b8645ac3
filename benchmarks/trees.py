"""Benchmark: two source trees of phenolab on the same workloads, interleaved in one run.

    python benchmarks/trees.py OLD_TREE [NEW_TREE] [--rounds 3] [--only NAME,...]

Each workload runs as a fresh process with one tree's ``src`` on PYTHONPATH and that tree's own
benchmark script (so a benchmark whose imports moved still runs against the code it was written
for), alternately old, new, old, new, ... for `--rounds` rounds, in one process of this script.
Printed per workload: the median CPU seconds (user + system of the child process, less sensitive
than wall time to a loaded machine) of each tree and the ratio new / old, with the load average
before and after. A ratio above 1 means the new tree is slower.

Workloads (small presets of the repository's benchmarks, plus two end-to-end CLI runs):
ensemble (benchmarks/ensemble.py --quick), ntk (benchmarks/ntk.py --repeats 3), hessian
(benchmarks/hessian.py --quick), sweep (benchmarks/sweep.py --small --executors inline,local),
run-f-principle and run-phase-diagram (``phenolab run NAME --force`` quick preset, fresh store,
inline executor, one thread).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKLOADS: dict[str, list[str]] = {
    "ensemble": ["benchmarks/ensemble.py", "--quick"],
    "ntk": ["benchmarks/ntk.py", "--repeats", "3"],
    "hessian": ["benchmarks/hessian.py", "--quick"],
    "sweep": ["benchmarks/sweep.py", "--small", "--executors", "inline,local"],
    "run-f-principle": ["-m", "phenolab.cli", "run", "f-principle", "--force"],
    "run-phase-diagram": ["-m", "phenolab.cli", "run", "phase-diagram", "--force"],
}


def cpu_seconds(tree: Path, args: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of `args` with `tree`'s code, in a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PHENOLAB_STORE": str(Path(tmp) / "s.sqlite"),
               "PHENOLAB_THREADS": "1"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: a verdict failed, still a timing
        raise SystemExit(f"{tree}: {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the reference tree (e.g. a git worktree of an older commit)")
    parser.add_argument("new", type=Path, nargs="?", default=HERE.parent, help="default: this repository")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workload names")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"--only: unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    print(f"old {args.old.resolve()}\nnew {args.new.resolve()}\nload average before: {os.getloadavg()}")
    print(f"{'workload':<20}{'old CPU s':>11}{'new CPU s':>11}{'new/old':>9}{'old wall':>10}{'new wall':>10}")
    for name in names:
        times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            for which, tree in (("old", args.old), ("new", args.new)):
                times[which].append(cpu_seconds(tree.resolve(), WORKLOADS[name]))
        old = statistics.median(c for c, _ in times["old"])
        new = statistics.median(c for c, _ in times["new"])
        old_w = statistics.median(w for _, w in times["old"])
        new_w = statistics.median(w for _, w in times["new"])
        print(f"{name:<20}{old:>11.2f}{new:>11.2f}{new / old:>9.3f}{old_w:>10.1f}{new_w:>10.1f}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
