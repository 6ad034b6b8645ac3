"""Peer side of `make bench-peers`: neural-tangents' empirical NTK and PyHessian's top eigenvalue.

    .venv-peers/bin/python benchmarks/peers_run.py PROBLEMS.npz RESULTS.json KERNELS.npz [--serve]

Runs in the peers' own virtual environment (benchmarks/peers-requirements.txt) and imports
nothing from phenolab: it rebuilds both networks from the weights that benchmarks/peers.py
exported (PROBLEMS.npz), checks that they compute the exported outputs, and then measures

* neural-tangents 0.6.5, ``jax.jit(nt.empirical_ntk_fn(apply_fn, vmap_axes=..., implementation=...))``
  for JACOBIAN_CONTRACTION (its default), NTK_VECTOR_PRODUCTS and STRUCTURED_DERIVATIVES,
  each with ``vmap_axes=None`` (the default) called as ``fn(x, None, params)`` and as
  ``fn(x, x, params)``, and with ``vmap_axes=0`` called as ``fn(x, None, params)``; timed after a
  warm-up call (the compile), median and best of the repeats; kernels go to KERNELS.npz;
* PyHessian (``pyhessian`` 0.1): ``hessian(model, nn.MSELoss(), data=(x, y), cuda=False)
  .eigenvalues(top_n=1)`` (its defaults maxIter=100, tol=1e-3), one run per seed (its start
  vector comes from torch's global generator), each time including the gradient graph that its
  constructor builds; HVPs counted by wrapping ``pyhessian.hessian.hessian_vector_product``;
* an independent float64 reference lambda_max: scipy's ``eigsh`` (ARPACK) on float64
  double-backward HVPs of the same network.

With ``--serve`` it then stays up for the driver's interleaved head-to-head rounds (`serve`).

One thread: XLA_FLAGS (``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``)
must be set before jax is imported (the driver does), and torch.set_num_threads(1).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
import pyhessian  # noqa: E402
import pyhessian.hessian  # noqa: E402, F401
import scipy  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402
import torch  # noqa: E402
from neural_tangents import stax  # noqa: E402
from torch import nn  # noqa: E402

# the package's __init__ rebinds the name pyhessian.hessian to the class: take the module itself
pyhessian_hessian = sys.modules["pyhessian.hessian"]


REPLY = "@@peers "


def layers(data: np.lib.npyio.NpzFile, prefix: str) -> list[dict[str, np.ndarray | float]]:
    """Per layer: raw weight (out, in), raw bias (out,), and multipliers: z = wm * W h + bm * b."""
    count = int(data[f"{prefix}_layers"])
    return [
        {"W": data[f"{prefix}_W{i}"], "b": data[f"{prefix}_b{i}"],
         "wm": float(data[f"{prefix}_wmult{i}"]), "bm": float(data[f"{prefix}_bmult{i}"])}
        for i in range(count)
    ]


def relative(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def times_of(fn, repeats: int, budget: float) -> tuple[float, list[float], list[float], object]:
    """(seconds of the first call, wall and process-CPU seconds of `repeats` later calls, the last
    result); fewer calls (at least 3) once the timed calls have taken `budget` seconds."""
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(repeats):
        if len(times) >= 3 and sum(times) > budget:
            break
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return first, times, cpu, result


# ---------------------------------------------------------------------------- neural-tangents
def neural_tangents_ntk(data, repeats: int, budget: float) -> tuple[dict, dict[str, np.ndarray], dict]:
    """The sweep over neural-tangents' modes: (results, kernels, a call per mode for the head-to-head)."""
    spec = layers(data, "ntk")
    activation = str(data["ntk_activation"])
    act = {"relu": stax.Relu, "tanh": lambda: stax.Elementwise(jnp.tanh)}[activation]
    net, params = [], []
    for i, layer in enumerate(spec):
        fan_in = layer["W"].shape[1]
        # neural-tangents' NTK parameterization: z = W_std / sqrt(fan_in) * (h W) + b_std * b, with
        # W (fan_in, fan_out) and b (1, fan_out) the trainable (raw) values, exactly phenolab's layer
        net.append(stax.Dense(layer["W"].shape[0], W_std=layer["wm"] * fan_in**0.5, b_std=layer["bm"],
                              parameterization="ntk"))
        params.append((jnp.asarray(layer["W"].T), jnp.asarray(layer["b"][None, :])))
        if i < len(spec) - 1:
            net.append(act())
            params.append(())
    _, apply_fn, _ = stax.serial(*net)
    x = jnp.asarray(data["ntk_x"])
    out = np.asarray(apply_fn(params, x))
    out_diff = relative(out, data["ntk_f"])
    if out_diff > 1e-5:
        raise AssertionError(f"neural-tangents' network computes other outputs than phenolab's: {out_diff:.1e}")
    size = sum(int(np.prod(a.shape)) for p in params for a in p)

    rows, kernels, calls = {}, {}, {}
    # x2=None is the documented call for x2 = x1 (it lets the implementation reuse one Jacobian);
    # with vmap_axes=None it is also timed with x2 = x1 passed explicitly, because jitted it returns
    # a wrong kernel at these sizes (see peers-requirements.txt)
    modes = [(name, axes, x2) for name in ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")
             for axes, x2 in ((None, None), (None, "x1"), (0, None))]
    for name, axes, x2 in modes:
        impl = getattr(nt.NtkImplementation, name)
        fn = jax.jit(nt.empirical_ntk_fn(apply_fn, vmap_axes=axes, implementation=impl))
        other = None if x2 is None else x
        first, times, cpu, kernel = times_of(lambda fn=fn, other=other: fn(x, other, params).block_until_ready(),
                                              repeats, budget)
        kernel = np.asarray(kernel)
        if kernel.shape != (len(x), len(x)):
            raise AssertionError(f"{name}: kernel of shape {kernel.shape}")
        key = f"{name}, vmap_axes={axes}, x2={x2}"
        calls[key] = lambda fn=fn, other=other: fn(x, other, params).block_until_ready()
        rows[key] = {"implementation": name, "vmap_axes": axes, "x2": x2, "first_call": first, "calls": len(times),
                     "median": statistics.median(times), "best": min(times), "times": times,
                     "cpu_median": statistics.median(cpu),
                     "default": name == "JACOBIAN_CONTRACTION" and axes is None}
        kernels[key] = kernel
        print(f"  neural-tangents {key:<50} median {1e3 * statistics.median(times):9.2f} ms "
              f"(first call {first:.2f} s, {len(times)} timed calls)", flush=True)
    return {"output_rel_diff": out_diff, "parameters": size, "rows": rows}, kernels, calls


# ---------------------------------------------------------------------------- PyHessian
class Net(nn.Module):
    """z = wm * (W h) + bm * b per layer (raw W, b trainable), activation between layers."""

    def __init__(self, spec, activation: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        self.mults = []
        for layer in spec:
            out_dim, in_dim = layer["W"].shape
            linear = nn.Linear(in_dim, out_dim, dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.as_tensor(layer["W"]))
                linear.bias.copy_(torch.as_tensor(layer["b"]))
            self.linears.append(linear)
            self.mults.append((layer["wm"], layer["bm"]))
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.linears) - 1
        for i, (linear, (wm, bm)) in enumerate(zip(self.linears, self.mults)):
            x = wm * nn.functional.linear(x, linear.weight) + bm * linear.bias
            if i < last:
                x = self.act(x)
        return x


def eigsh_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, float]:
    """(lambda_max, HVPs, seconds) by scipy eigsh (ARPACK, tol 1e-12) on float64 HVPs."""
    params = list(model.parameters())
    loss = nn.functional.mse_loss(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    sizes = [p.numel() for p in params]
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        pieces = torch.split(torch.as_tensor(v.ravel()), sizes)
        vs = [t.reshape(p.shape) for t, p in zip(pieces, params)]
        hv = torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)
        return torch.cat([t.reshape(-1) for t in hv]).numpy()

    n = sum(sizes)
    start = time.perf_counter()
    v0 = np.random.default_rng(7).standard_normal(n)
    op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    value = float(sla.eigsh(op, k=1, which="LA", tol=1e-12, v0=v0, return_eigenvectors=False)[0])
    return value, count[0], time.perf_counter() - start


def pyhessian_top(data, seeds: list[int]) -> tuple[dict, object]:
    """The PyHessian runs over seeds and the float64 eigsh reference, and a function that repeats
    the runs (for the head-to-head)."""
    spec = layers(data, "hess")
    activation = str(data["hess_activation"])
    x, y = torch.as_tensor(data["hess_x"]), torch.as_tensor(data["hess_y"])
    model = Net(spec, activation, torch.float32)
    with torch.no_grad():
        out = model(x).numpy()
    out_diff = relative(out, data["hess_f"])
    if out_diff > 1e-5:
        raise AssertionError(f"the peer's torch network computes other outputs than phenolab's: {out_diff:.1e}")

    def run_seeds() -> list[dict]:
        return pyhessian_runs(model, x, y, seeds)

    runs = run_seeds()
    print(f"  PyHessian eigenvalues(top_n=1): median {1e3 * statistics.median(r['time'] for r in runs):.1f} ms, "
          f"{statistics.median(r['hvps'] for r in runs):.0f} HVPs", flush=True)

    model64 = Net(spec, activation, torch.float64)
    ref, ref_hvps, ref_time = eigsh_reference(model64, x.double(), y.double())
    print(f"  peer reference (scipy eigsh, float64): {ref:.12f}, {ref_hvps} HVPs, {ref_time:.1f} s", flush=True)
    return {"output_rel_diff": out_diff, "parameters": sum(p.numel() for p in model.parameters()),
            "runs": runs, "eigsh_reference": ref, "eigsh_reference_hvps": ref_hvps}, run_seeds


def pyhessian_runs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seeds: list[int]) -> list[dict]:
    """One timed PyHessian eigenvalues(top_n=1) per seed: wall and CPU seconds, HVPs, eigenvalue."""
    count = [0]
    original = pyhessian_hessian.hessian_vector_product

    def counted(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    pyhessian_hessian.hessian_vector_product = counted
    criterion = nn.MSELoss()  # mean (f - y)^2: phenolab's mse
    runs = []
    try:
        for seed in seeds:
            model.zero_grad(set_to_none=True)
            torch.manual_seed(seed)  # PyHessian draws its start vector from the global generator
            count[0] = 0
            start, start_cpu = time.perf_counter(), time.process_time()
            h = pyhessian_hessian.hessian(model, criterion, data=(x, y), cuda=False)
            values, _ = h.eigenvalues(top_n=1)
            seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            runs.append({"seed": seed, "time": seconds, "cpu": cpu, "hvps": count[0],
                         "eigenvalue": float(values[0])})
            del h
    finally:
        pyhessian_hessian.hessian_vector_product = original
        model.zero_grad(set_to_none=True)
    return runs


def main() -> None:
    problems, results_path, kernels_path = sys.argv[1:4]
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    data = np.load(problems)
    repeats, budget = int(data["repeats"]), float(data["budget"])
    seeds = [int(s) for s in data["seeds"]]
    versions = {"python": platform.python_version(), "neural_tangents": nt.__version__, "jax": jax.__version__,
                "jaxlib": jaxlib.__version__,
                "numpy": np.__version__, "scipy": scipy.__version__, "torch": torch.__version__,
                "pyhessian": getattr(pyhessian, "__version__", "0.1 (PyPI)"),
                "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax_devices": [str(d) for d in jax.devices()]}
    print(f"  peers: neural-tangents {versions['neural_tangents']}, jax {versions['jax']}, "
          f"torch {versions['torch']}, devices {versions['jax_devices']}", flush=True)
    ntk, kernels, ntk_calls = neural_tangents_ntk(data, repeats, budget)
    hess, run_seeds = pyhessian_top(data, seeds)
    with open(results_path, "w") as f:
        json.dump({"versions": versions, "ntk": ntk, "hessian": hess}, f, indent=1)
    np.savez(kernels_path, **kernels)
    if "--serve" in sys.argv:
        serve(ntk_calls, run_seeds)


def serve(ntk_calls: dict, run_seeds) -> None:
    """Head-to-head rounds driven by benchmarks/peers.py, one command a line on stdin, one reply a
    line on stdout (prefixed REPLY): ``ntk CALLS KEY`` times CALLS calls of the mode KEY after a
    warm-up call; ``pyhessian`` repeats the PyHessian runs over the seeds; ``quit``."""
    print(f"{REPLY}ready", flush=True)
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        command, *rest = line.strip().split(" ", 2)
        if command == "ntk":
            _, times, cpu, _ = times_of(ntk_calls[rest[1]], int(rest[0]), float("inf"))
            reply = {"times": times, "cpu": cpu}
        elif command == "pyhessian":
            reply = {"runs": run_seeds()}
        else:
            break
        print(REPLY + json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
