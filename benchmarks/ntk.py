"""Benchmark: the empirical NTK methods of `phenolab.probes.ntk`, timed in one run.

    python benchmarks/ntk.py              # best of 5 repeats
    python benchmarks/ntk.py --repeats 2  # quicker

Workload (the house reference): a ReLU MLP (phenolab's `MLP`, NTK parametrization) with input
dimension d = 10, two hidden layers of 512 units, one output, biases; n = 256 Gaussian inputs;
float32; one thread (``torch.set_num_threads(1)``). Theta(x, x) is (256, 256) over
P = 268,801 parameters.

Methods: ``layerwise`` (per-layer Gram sum: one forward, one backward, no Jacobian),
``ntvp`` (Jacobian rows of chunks of x, pushed through f(x) by torch.func.jvp), ``jacobian``
(torch.func vmap(jacrev) per-sample Jacobians, then J J^T). A second workload, the same net
with one hidden layer, adds the ``two_layer`` closed form. Printed: best time of each method,
its ratio to ``jacobian`` (time / jacobian time) and the largest relative difference
max |K_a - K_b| / max |K_b| between the methods' kernels.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.models.mlp import MLP
from phenolab.probes.ntk import empirical_ntk


def call_times(fn, repeats: int, budget: float | None = None) -> tuple[list[float], list[float], torch.Tensor]:
    """Wall times and process CPU times of ``repeats`` calls after one warm-up call, and the
    last result; with a ``budget`` (seconds), fewer calls (at least 3) once the timed calls
    have taken that long."""
    result = fn()
    times, cpu = [], []
    for _ in range(repeats):
        if budget is not None and len(times) >= 3 and sum(times) > budget:
            break
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu, result


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    """Best wall time of ``repeats`` calls after one warm-up call, and the last result."""
    times, _, result = call_times(fn, repeats)
    return min(times), result


def max_relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def workload(depth: int = 2, n: int = 256, d: int = 10, width: int = 512,
             dtype: torch.dtype = torch.float32) -> tuple[MLP, torch.Tensor]:
    """The benchmark's ReLU MLP (NTK parametrization, seed 0) and its n inputs x ~ N(0, I) (seed 1)."""
    spec = MLPSpec(width=width, depth=depth, activation="relu", parametrization="ntk")
    model = build_model(spec, d, 1, torch.Generator().manual_seed(0), dtype=dtype)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(1)).to(dtype)
    return model, x


def bench(depth: int, methods: list[str], n: int, d: int, width: int, repeats: int) -> None:
    model, x = workload(depth, n, d, width)
    size = sum(p.numel() for p in model.parameters())
    print(f"\nReLU MLP d={d}, {depth} hidden layer(s) of {width}, n={n}, P={size:,}, float32, 1 thread")
    results = {m: best_time(lambda m=m: empirical_ntk(model, x, method=m), repeats) for m in methods}
    base = results["jacobian"][0]
    print(f"{'method':<10} {'best time':>12} {'/ jacobian':>11}")
    for method, (seconds, _) in results.items():
        print(f"{method:<10} {seconds * 1e3:>9.2f} ms {seconds / base:>11.4f}")
    worst = max(
        max_relative_difference(results[a][1], results[b][1]) for a in methods for b in methods if a != b
    )
    print(f"max relative difference between methods: {worst:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, best of {args.repeats}")
    bench(2, ["layerwise", "ntvp", "jacobian"], n=256, d=10, width=512, repeats=args.repeats)
    bench(1, ["two_layer", "layerwise", "ntvp", "jacobian"], n=256, d=10, width=512, repeats=args.repeats)


if __name__ == "__main__":
    main()
