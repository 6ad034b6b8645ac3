"""Benchmark: the top Hessian eigenvalue by phenolab's Lanczos against PyHessian-style power iteration.

    python benchmarks/hessian.py            # 1-3 minutes on one CPU thread
    python benchmarks/hessian.py --quick    # smaller net and data, a smoke run

Workload: phenolab's tanh MLP, d = 10 inputs, 2 hidden layers of 256 units, 1 output
(68,865 parameters), standard parametrization at initialization; 2048 samples x ~ N(0, I),
y = sin(x . beta); MSE (mean (f - y)^2); the full-batch Hessian at the initial weights.
torch.set_num_threads(1); times, HVP counts and errors are medians over seeds 0..8 (start
vectors; the worst error is printed too), and every time includes building the gradient graph.

(a) BASELINE, a re-implementation (not PyHessian itself) of the algorithm of PyHessian's
    ``hessian(model, criterion, data=(x, y)).eigenvalues(maxIter=100, tol=1e-3, top_n=1)``
    (Yao et al., arXiv:1912.07145): the gradient built once with ``create_graph=True``, each
    HVP a backward pass through it (double backward), power iteration on lists of per-parameter
    tensors from a Gaussian start, stopped when the Rayleigh quotient changes by less than
    1e-3 relative. The real PyHessian is compared later, in a separate venv.
(b) phenolab: `hvp_operator` + `lanczos` (float32, as the baseline) with the fewest steps whose
    median error is at most the baseline's median error; also the practical run stopped by
    Lanczos's own residual test at tol = 1e-3 (no knowledge of the reference).
(c) phenolab's Lanczos with as many steps as fit in the baseline's time (float32 and float64).

Reference: top eigenvalue of the float64 Hessian by a long, tight Lanczos (tol 1e-13), checked
against scipy's ``eigsh`` in float64. Errors are |lambda - lambda_ref| / lambda_ref; the float32
runs cannot go below the float32 floor (printed). Also printed: the cost of one HVP for three
implementations, and own Lanczos against scipy ``eigsh`` at equal HVP counts.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from typing import Callable

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vjp

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes.hessian import hvp_operator, mse
from phenolab.probes.lanczos import lanczos

SEEDS = range(9)


def workload(width: int, samples: int) -> tuple[nn.Module, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 10, generator=g)
    beta = 2.0 * torch.randn(10, generator=g) / 10**0.5
    y = torch.sin(x @ beta)[:, None]
    model = build_model(MLPSpec(width=width, depth=2, activation="tanh"), 10, 1, torch.Generator().manual_seed(1))
    return model, x, y


# ---- (a) the baseline: PyHessian's power iteration, re-implemented ----------------------------

def _normalized(v: list[Tensor]) -> list[Tensor]:
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    return [t / (norm + 1e-6) for t in v]


def pyhessian_like_top(model: nn.Module, x: Tensor, y: Tensor, seed: int, tol: float = 1e-3,
                       max_iter: int = 100) -> tuple[float, int]:
    """(top eigenvalue, HVPs) by PyHessian's algorithm on the model's own parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.mse_loss(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator().manual_seed(seed)
    v = _normalized([torch.randn(p.shape, generator=g) for p in params])
    eigenvalue = None
    for i in range(max_iter):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        estimate = float(sum((a * b).sum() for a, b in zip(hv, v)))
        v = _normalized(list(hv))
        if eigenvalue is not None and abs(eigenvalue - estimate) / (abs(eigenvalue) + 1e-6) < tol:
            return estimate, i + 1
        eigenvalue = estimate
    return float(eigenvalue), max_iter


# ---- (b, c) phenolab ----------------------------------------------------------------------------

def phenolab_top(model: nn.Module, x: Tensor, y: Tensor, seed: int, iters: int, tol: float = 0.0,
                 dtype: torch.dtype | None = None) -> tuple[float, int]:
    matvec, n = hvp_operator(model, mse, x, y, dtype=dtype)
    values, _, info = lanczos(matvec, n, 1, iters=iters, tol=tol, seed=seed)
    return float(values[0]), int(info["hvps"])


def timed(fn: Callable[[], tuple[float, int]]) -> tuple[float, float, int, float]:
    """(wall seconds, eigenvalue, hvps, process CPU seconds) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    value, hvps = fn()
    return time.perf_counter() - start, value, hvps, time.process_time() - start_cpu


def over_seeds(run: Callable[[int], tuple[float, int]], ref: float) -> dict[str, float]:
    """Median wall time, CPU time and HVPs, median and worst relative error over SEEDS."""
    rows = [timed(lambda seed=seed: run(seed)) for seed in SEEDS]
    errors = [abs(value - ref) / abs(ref) for _, value, _, _ in rows]
    return {"time": statistics.median(r[0] for r in rows), "hvps": statistics.median(r[2] for r in rows),
            "err": statistics.median(errors), "worst": max(errors), "cpu": statistics.median(r[3] for r in rows)}


def matched_accuracy(model, x, y, ref: float, target: float, limit: int) -> tuple[int, dict[str, float]]:
    """The fewest Lanczos steps whose median error over SEEDS is <= target."""
    for m in range(1, limit + 1):
        stats = over_seeds(lambda s, m=m: phenolab_top(model, x, y, s, iters=m), ref)
        if stats["err"] <= target:
            return m, stats
    raise RuntimeError(f"Lanczos did not reach {target:.2e} in {limit} steps")


def matched_time(model, x, y, ref: float, budget: float, dtype: torch.dtype | None) -> tuple[int, dict[str, float]]:
    """The most Lanczos steps whose median time stays within `budget` seconds."""
    best = (1, over_seeds(lambda s: phenolab_top(model, x, y, s, iters=1, dtype=dtype), ref))
    m = 2
    while True:
        stats = over_seeds(lambda s, m=m: phenolab_top(model, x, y, s, iters=m, dtype=dtype), ref)
        if stats["time"] > budget:
            return best
        best, m = (m, stats), m + 1


# ---- side measurements ------------------------------------------------------------------------

def hvp_costs(model: nn.Module, x: Tensor, y: Tensor, repeats: int = 5) -> dict[str, float]:
    """Milliseconds per HVP (best of `repeats`), float32, for three implementations."""
    names = [name for name, _ in model.named_parameters()]
    theta = tuple(p.detach().clone() for p in model.parameters())

    def loss(params: tuple[Tensor, ...]) -> Tensor:
        return mse(functional_call(model, dict(zip(names, params)), (x,)), y)

    v = tuple(torch.randn_like(t) for t in theta)
    _, reused_vjp = vjp(grad(loss), theta)
    matvec, n = hvp_operator(model, mse, x, y)
    flat = torch.cat([t.reshape(-1) for t in v])
    candidates = {
        "torch.func vjp(grad(L)) per product": lambda: vjp(grad(loss), theta)[1](v),
        "torch.func vjp(grad(L)) linearized once, reused": lambda: reused_vjp(v),
        "double backward on one reused graph (phenolab)": lambda: matvec(flat),
    }
    costs = {}
    for label, fn in candidates.items():
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        costs[label] = 1e3 * min(times)
    return costs


def versus_eigsh(model: nn.Module, x: Tensor, y: Tensor, ref: float) -> list[tuple[str, int, float, float]]:
    """(solver, HVPs, error, own Lanczos error at the same HVPs), float64, seed 0 start vector."""
    matvec, n = hvp_operator(model, mse, x, y, dtype=torch.float64)
    v0 = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    rows = []
    for ncv, tol in [(6, 1e-2), (6, 1e-4), (6, 1e-6), (6, 1e-8), (20, 1e-8)]:
        count = [0]

        def mv(v: np.ndarray, count: list[int] = count) -> np.ndarray:
            count[0] += 1
            return matvec(torch.as_tensor(v.ravel())).numpy()

        op = sla.LinearOperator((n, n), matvec=mv, dtype=np.float64)
        value = float(sla.eigsh(op, k=1, which="LA", ncv=ncv, tol=tol, v0=v0, return_eigenvectors=False)[0])
        own, _ = phenolab_top(model, x, y, 0, iters=count[0], dtype=torch.float64)
        rows.append((f"eigsh ncv={ncv:<2} tol={tol:.0e}", count[0], abs(value - ref) / ref, abs(own - ref) / ref))
    return rows


def reference(model: nn.Module, x: Tensor, y: Tensor, check: bool = True) -> tuple[float, dict, float | None]:
    """(lambda_max by a float64 Lanczos at tol 1e-13, its info, scipy eigsh's value or None)."""
    matvec, n = hvp_operator(model, mse, x, y, dtype=torch.float64)
    values, _, info = lanczos(matvec, n, 1, iters=300, tol=1e-13, seed=123)
    if not check:
        return float(values[0]), info, None
    op = sla.LinearOperator((n, n), matvec=lambda v: matvec(torch.as_tensor(v.ravel())).numpy(), dtype=np.float64)
    check = float(sla.eigsh(op, k=1, which="LA", tol=1e-12, return_eigenvectors=False)[0])
    return float(values[0]), info, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="width 64, 512 samples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    width, samples = (64, 512) if args.quick else (256, 2048)
    model, x, y = workload(width, samples)
    n = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread")
    print(f"tanh MLP 10-{width}-{width}-1 ({n} parameters), {samples} samples, MSE; medians over seeds {list(SEEDS)}\n")

    ref, info, check = reference(model, x, y)
    floor, _ = phenolab_top(model, x, y, 0, iters=300, tol=1e-10)
    print(f"reference lambda_max = {ref:.12f} (float64 Lanczos, {info['hvps']} HVPs, residual "
          f"{info['residuals'][0]:.1e}); scipy eigsh float64: rel. diff {abs(check - ref) / ref:.1e}; "
          f"float32 floor: {abs(floor - ref) / ref:.1e}\n")

    print("one HVP, float32:")
    for label, ms in hvp_costs(model, x, y).items():
        print(f"  {label:<50} {ms:7.1f} ms")

    base_model = copy.deepcopy(model)
    a = over_seeds(lambda s: pyhessian_like_top(base_model, x, y, s), ref)
    m_b, b = matched_accuracy(model, x, y, ref, a["err"], limit=100)
    b_tol = over_seeds(lambda s: phenolab_top(model, x, y, s, iters=100, tol=1e-3), ref)
    m_c, c = matched_time(model, x, y, ref, a["time"], None)
    m_c64, c64 = matched_time(model, x, y, ref, a["time"], torch.float64)

    print("\ntop eigenvalue                                       time      HVPs   rel. error (median / worst)")
    rows = [
        ("(a) BASELINE: PyHessian-style power iteration, re-impl.", a),
        (f"(b) phenolab Lanczos, {m_b} steps (baseline's accuracy)", b),
        ("    phenolab Lanczos, own stop at tol=1e-3", b_tol),
        (f"(c) phenolab Lanczos, {m_c} steps (baseline's time), fp32", c),
        (f"    phenolab Lanczos, {m_c64} steps (baseline's time), fp64", c64),
    ]
    for label, s in rows:
        print(f"{label:<56} {1e3 * s['time']:7.1f} ms {s['hvps']:5.0f}   {s['err']:.1e} / {s['worst']:.1e}")
    print(f"\nat the baseline's accuracy: phenolab is {a['time'] / b['time']:.1f}x faster "
          f"({a['hvps']:.0f} -> {b['hvps']:.0f} HVPs)")
    best = min(c["err"], c64["err"])
    print(f"in the baseline's time: phenolab is {a['err'] / c['err']:.1e}x more accurate in float32 "
          f"({a['err']:.1e} -> {c['err']:.1e}; the float32 floor is {abs(floor - ref) / ref:.1e}), "
          f"{a['err'] / c64['err']:.1e}x in float64 ({c64['err']:.1e}); best {a['err'] / best:.1e}x")

    print("\nown Lanczos vs scipy eigsh (ARPACK, k=1, which='LA'), float64, same start vector:")
    for label, hvps, err, own in versus_eigsh(model, x, y, ref):
        print(f"  {label}: {hvps:3d} HVPs, error {err:.1e}; own Lanczos with {hvps:3d} HVPs: {own:.1e}")


if __name__ == "__main__":
    main()
