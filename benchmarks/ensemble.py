"""Benchmark: the ensemble trainer against the plain per-network loop, on a phase-diagram workload.

    python benchmarks/ensemble.py            # 64 nets x 2000 steps (a few minutes: (a) is slow)
    python benchmarks/ensemble.py --quick    # 8 nets x 200 steps, a smoke run

Workload: two-layer ReLU nets f(x) = sum_k a_k relu(w_k x + b_k) + c (1-D input, biases on,
width m = 1000, standard parametrization, init std m^-gamma), each with its own seed, fit by
full-batch GD (MSE) to a sum of sines on n = 200 grid points in [-1, 1].

(a) the plain loop: one network after another, torch.nn.Sequential + torch.optim.SGD, one
    process, torch.set_num_threads(1); the same initial weights, copied from phenolab's MLP.
(b) phenolab's `train_ensemble` using every core: worker processes (cold: the pool starts
    inside the timing; warm: it was started before) and one process with all threads.

Printed: times, the ratio (a) / (b), the dense-equivalent GFLOP/s of (b) and the largest
weight difference between (a) and (b). Flops are counted as for the dense computation,
6 m n per network and step (forward x w + b and a . h: ~3 m n, backward ~3 m n), although
the fused path does O(m + n) work per step.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn

from phenolab.config import RunSpec, validate
from phenolab.models import build_model
from phenolab.tasks import make_task
from phenolab.train import generator
from phenolab.train.ensemble import train_ensemble


def workload(nets: int, steps: int, width: int, points: int, lr: float, gammas: list[float]) -> list[RunSpec]:
    """`nets` runs with their own seeds, init scales cycling through `gammas`."""
    return [
        validate(RunSpec, {
            "model": {"width": width, "activation": "relu", "init": {"gamma": gammas[i % len(gammas)]}},
            "data": {"kind": "sines", "n_train": points, "interval": [-1, 1], "frequencies": [1.0, 3.0],
                     "amplitudes": [1.0, 0.5], "seed": 0},
            "train": {"optimizer": "gd", "lr": lr, "steps": steps},
            "seed": i,
        })
        for i in range(nets)
    ]


def plain_loop(specs: list[RunSpec], x: torch.Tensor, y: torch.Tensor) -> tuple[float, list[list[torch.Tensor]]]:
    """(a): each net alone, nn.Sequential + torch.optim.SGD, from phenolab's initial weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    nets = []
    for spec in specs:
        mlp = build_model(spec.model, 1, 1, generator(spec.seed, "model"))
        width = spec.model.hidden_widths[0]
        net = nn.Sequential(nn.Linear(1, width), nn.ReLU(), nn.Linear(width, 1))
        with torch.no_grad():
            for p, q in zip(net.parameters(), mlp.parameters()):
                p.copy_(q)
        nets.append(net)
    started = time.perf_counter()
    for spec, net in zip(specs, nets):
        opt = torch.optim.SGD(net.parameters(), lr=spec.train.lr)
        for _ in range(spec.train.steps):
            opt.zero_grad()
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - started
    torch.set_num_threads(threads)
    return elapsed, [[p.detach() for p in net.parameters()] for net in nets]


def ensemble(specs: list[RunSpec], task, workers: int, threads: int) -> tuple[float, list]:
    """(b): `train_ensemble` with `workers` processes, this process at `threads` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    results = train_ensemble(task, specs, workers=workers)
    elapsed = time.perf_counter() - started
    torch.set_num_threads(before)
    return elapsed, results


def max_difference(weights: list[list[torch.Tensor]], results: list) -> float:
    names = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    return max(
        (r.state[name] - w).abs().max().item()
        for ws, r in zip(weights, results)
        for name, w in zip(names, ws)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 nets x 200 steps, a smoke run")
    parser.add_argument("--nets", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.02)  # below the edge of stability for every gamma
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    nets = args.nets or (8 if args.quick else 64)
    steps = args.steps or (200 if args.quick else 2000)
    cores = os.cpu_count() or 1
    specs = workload(nets, steps, args.width, args.points, args.lr, args.gammas)
    task = make_task(specs[0].data, specs[0].seed)
    m, n = args.width, args.points
    flops = 6 * m * n * steps * nets
    print(f"phenolab ensemble benchmark: {nets} two-layer ReLU nets, width {m}, {n} points, {steps} GD steps, "
          f"init gamma in {args.gammas}, lr {args.lr}")
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}")
    print(f"flops counted as dense: 6 m n x steps x nets = {flops:.3g}")

    t_plain, weights = plain_loop(specs, task.x_train, task.y_train)
    print(f"(a) plain loop, nn.Sequential + SGD, 1 thread:   {t_plain:8.2f} s")

    runs = {
        f"(b) workers={cores}, pool started in the timing": (cores, 1),
        f"(b) workers={cores}, pool already running":       (cores, 1),
        f"(b) one process, {cores} threads":                  (1, cores),
        "(b) one process, 1 thread":                          (1, 1),
    }
    best = None
    for label, (workers, threads) in runs.items():
        elapsed, results = ensemble(specs, task, workers, threads)
        diff = max_difference(weights, results)
        statuses = sorted({r.status for r in results})
        print(f"{label:48s} {elapsed:8.2f} s  x{t_plain / elapsed:6.1f} faster  "
              f"{flops / elapsed / 1e9:7.1f} GFLOP/s (dense-equivalent)  max |w(a) - w(b)| = {diff:.2e}  {statuses}")
        if best is None or elapsed < best[1]:
            best = (label, elapsed, diff)
    assert best is not None
    label, elapsed, diff = best
    print(f"fastest (b): {label.removeprefix('(b) ')}: {t_plain / elapsed:.1f} x the plain loop's throughput, "
          f"{flops / elapsed / 1e9:.1f} GFLOP/s dense-equivalent, max weight difference {diff:.2e}")
    print("(the cold pool run includes starting the worker processes; a sweep pays that once)")


if __name__ == "__main__":
    main()
