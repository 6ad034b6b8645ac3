"""Benchmark against the peers themselves: neural-tangents (empirical NTK) and PyHessian (top
Hessian eigenvalue), each run in its own virtual environment, with phenolab measured in the same run.

    make bench-peers                      # builds .venv-peers once, then runs this driver
    .venv/bin/python benchmarks/peers.py --peer-python .venv-peers/bin/python [--repeats 7]

The driver runs in phenolab's venv. It (1) builds the two problems with fixed seeds (the
workloads of benchmarks/ntk.py and benchmarks/hessian.py) and exports raw weights, layer
multipliers, inputs and outputs to build/bench-peers/problems.npz; (2) times phenolab's NTK
methods; (3) runs benchmarks/peers_run.py with the peers' python (it imports nothing from
phenolab, rebuilds the same networks, asserts they compute the exported outputs, times every
mode, and writes peers-results.json and peers-kernels.npz); (4) times phenolab's layerwise NTK
and the fastest correct neural-tangents mode head-to-head, in alternating blocks (the peers'
process stays up and takes commands), so that both see the same machine load; (5) runs
phenolab's Lanczos against PyHessian's measured time and accuracy, and (6) PyHessian and the
accuracy-matched Lanczos head-to-head, alternating; (7) prints one table and the targets with
PASS/FAIL (the speed targets on the head-to-head ratios), and writes everything to
build/bench-peers/report.json. One thread everywhere: torch.set_num_threads(1) on both sides,
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" for jax.

NTK: ReLU MLP d=10, 2 hidden layers of 512, 1 output, NTK parametrization (z = W h / sqrt(fan_in)
+ b, raw W, b ~ N(0, 1)), n = 256, float32. In neural-tangents that is exactly
``stax.Dense(out, W_std=mult * sqrt(fan_in), b_std=1, parameterization='ntk')`` on the raw
weights, so the two compute the same function and the same parameter gradients. Times are
medians of the repeats after one warm-up call (for jax: the compile). Errors: max |K - K_ref| /
max |K_ref| against a float64 kernel (torch.func vmap(jacrev) on the float64 copy of the net),
and against phenolab's float32 layerwise kernel. A neural-tangents mode whose kernel is off the
float64 reference by more than 1e-4 is marked WRONG and left out of the targets (jitted
vmap_axes=None with x2=None is, in neural-tangents 0.6.5 / jax 0.4.25; see
peers-requirements.txt).

Targets: every correct neural-tangents kernel equals phenolab's to 1e-4 relative; phenolab's
layerwise NTK at least 2x faster than the fastest correct neural-tangents mode (head-to-head
medians); at PyHessian's median accuracy phenolab at least 2x faster (head-to-head); in
PyHessian's median time phenolab at least 100x more accurate (the better of float32 and float64).
Wall times decide; process CPU times are printed beside them (on a loaded machine they differ).

Hessian: tanh MLP 10-256-256-1 (standard parametrization), 2048 samples, MSE (mean (f - y)^2 =
torch's MSELoss), the full-batch Hessian at the initial weights. Reference lambda_max: phenolab's
float64 Lanczos at tol 1e-13, checked against an independent scipy eigsh in the peers' venv.
PyHessian: ``hessian(model, MSELoss(), data=(x, y), cuda=False).eigenvalues(top_n=1)``, seeds
0..8 (torch.manual_seed), medians. phenolab: the fewest Lanczos steps whose median error is at
most PyHessian's (time ratio), and the most steps that fit in PyHessian's median time (error
ratio, float32 and float64).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from phenolab.models.mlp import MLP
from phenolab.models.parametrization import BIAS_MULTIPLIER
from phenolab.probes.ntk import empirical_ntk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(name: str):
    """benchmarks/<name>.py as the module bench_<name> (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ntk_bench = _load("ntk")
hess_bench = _load("hessian")

PEER_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONNOUSERSITE": "1",
}
NTK_TOL = 1e-4
NTK_SPEEDUP = 2.0
HESS_SPEEDUP = 2.0
HESS_ACCURACY = 100.0


# ---------------------------------------------------------------------------- export
def export_mlp(model: MLP, prefix: str) -> dict[str, np.ndarray]:
    """Raw weights and multipliers of phenolab's MLP: layer l computes z = wmult_l * (W_l h) +
    bmult_l * b_l (the output scale folded into the last layer's multipliers)."""
    out: dict[str, np.ndarray] = {f"{prefix}_layers": np.array(len(model.layers)),
                                  f"{prefix}_activation": np.array(model.spec.activation)}
    last = len(model.layers) - 1
    for i, (layer, mult) in enumerate(zip(model.layers, model.multipliers)):
        if layer.bias is None:
            raise ValueError("the export expects biases on every layer")
        scale = model.output_scale if i == last else 1.0
        out[f"{prefix}_W{i}"] = layer.weight.detach().cpu().numpy()
        out[f"{prefix}_b{i}"] = layer.bias.detach().cpu().numpy()
        out[f"{prefix}_wmult{i}"] = np.array(scale * float(mult))
        out[f"{prefix}_bmult{i}"] = np.array(scale * BIAS_MULTIPLIER)
    return out


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------- phenolab NTK
def phenolab_ntk(model: MLP, x: torch.Tensor, repeats: int,
                 budget: float) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    rows, kernels = {}, {}
    for method in ("layerwise", "ntvp", "jacobian"):
        times, cpu, kernel = ntk_bench.call_times(lambda m=method: empirical_ntk(model, x, method=m), repeats, budget)
        rows[method] = {"median": statistics.median(times), "best": min(times), "times": times,
                        "cpu_median": statistics.median(cpu), "calls": len(times)}
        kernels[method] = kernel.numpy()
        print(f"  phenolab {method:<10} median {1e3 * rows[method]['median']:9.2f} ms", flush=True)
    start = time.perf_counter()
    ref = empirical_ntk(copy.deepcopy(model).double(), x.double(), method="jacobian").numpy()
    print(f"  float64 reference kernel (torch.func vmap(jacrev)): {time.perf_counter() - start:.1f} s", flush=True)
    return rows, kernels, ref


# ---------------------------------------------------------------------------- report
def fmt_ms(seconds: float) -> str:
    return f"{1e3 * seconds:10.2f} ms"


class Peer:
    """benchmarks/peers_run.py in the peers' venv: the sweep, then head-to-head commands (--serve).
    Its stderr (TensorFlow's start-up noise) goes to a log file; its stdout is echoed, replies parsed."""

    REPLY = "@@peers "

    def __init__(self, python: str, problems: Path, out: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update(PEER_ENV)
        self.results, self.kernels = out / "peers-results.json", out / "peers-kernels.npz"
        self.log_path = out / "peers-stderr.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [python, str(HERE / "peers_run.py"), str(problems), str(self.results), str(self.kernels), "--serve"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        self.read()  # until "ready": the sweep is done

    def read(self):
        for line in self.proc.stdout:
            if line.startswith(self.REPLY):
                body = line[len(self.REPLY):].strip()
                return None if body == "ready" else json.loads(body)
            print(line, end="", flush=True)
        self.proc.wait()
        tail = self.log_path.read_text()[-3000:]
        raise RuntimeError(f"the peers' process ended (exit {self.proc.returncode}); its stderr ends:\n{tail}")

    def ask(self, command: str):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--out", default=str(ROOT / "build" / "bench-peers"))
    parser.add_argument("--repeats", type=int, default=7, help="NTK sweep: timed calls after the warm-up")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="NTK sweep: seconds of timed calls after which a slow method stops (at least 3 calls)")
    parser.add_argument("--rounds", type=int, default=12, help="NTK head-to-head: interleaved rounds")
    parser.add_argument("--calls", type=int, default=20, help="NTK head-to-head: timed calls per side and round")
    parser.add_argument("--hess-rounds", type=int, default=4, help="Hessian head-to-head: interleaved rounds")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(hess_bench.SEEDS)
    started = time.perf_counter()

    # (1) the two problems, exported
    ntk_model, ntk_x = ntk_bench.workload(depth=2, n=256, d=10, width=512)
    hess_model, hess_x, hess_y = hess_bench.workload(256, 2048)
    with torch.no_grad():
        ntk_f, hess_f = ntk_model(ntk_x).numpy(), hess_model(hess_x).numpy()
    problems = out / "problems.npz"
    np.savez(problems, **export_mlp(ntk_model, "ntk"), ntk_x=ntk_x.numpy(), ntk_f=ntk_f,
             **export_mlp(hess_model, "hess"), hess_x=hess_x.numpy(), hess_y=hess_y.numpy(), hess_f=hess_f,
             repeats=np.array(args.repeats), budget=np.array(args.budget), seeds=np.array(seeds))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread; "
          f"problems exported to {problems}", flush=True)

    # (2) phenolab's NTK sweep
    print("phenolab NTK:", flush=True)
    ph_ntk, ph_kernels, ref_kernel = phenolab_ntk(ntk_model, ntk_x, args.repeats, args.budget)

    # (3) the peers' sweep, in their venv; the process stays up for the head-to-head rounds
    print(f"peers ({args.peer_python}; stderr in {out / 'peers-stderr.log'}):", flush=True)
    start = time.perf_counter()
    peer = Peer(args.peer_python, problems, out)
    try:
        peer_seconds = time.perf_counter() - start
        peers = json.loads(peer.results.read_text())
        nt_kernels = dict(np.load(peer.kernels))
        nt_rows = peers["ntk"]["rows"]
        # neural-tangents modes whose kernel agrees with the float64 reference
        correct = {key: relative(nt_kernels[key], ref_kernel) <= NTK_TOL for key in nt_rows}
        good = [k for k in nt_rows if correct[k]] or list(nt_rows)
        fastest_key = min(good, key=lambda k: nt_rows[k]["median"])

        # (4) NTK head-to-head: phenolab layerwise and the fastest correct neural-tangents mode in
        # alternating blocks, so that both see the same load
        print(f"NTK head-to-head, {args.rounds} rounds of {args.calls} calls: phenolab layerwise vs "
              f"neural-tangents {fastest_key}", flush=True)
        h2h = {"phenolab": {"times": [], "cpu": []}, "neural_tangents": {"times": [], "cpu": []}, "round_ratios": []}
        layerwise = lambda: empirical_ntk(ntk_model, ntk_x, method="layerwise")  # noqa: E731
        for r in range(args.rounds):
            block = {}
            for side in (("phenolab", "neural_tangents") if r % 2 == 0 else ("neural_tangents", "phenolab")):
                if side == "phenolab":
                    times, cpu, _ = ntk_bench.call_times(layerwise, args.calls)
                else:
                    reply = peer.ask(f"ntk {args.calls} {fastest_key}")
                    times, cpu = reply["times"], reply["cpu"]
                h2h[side]["times"] += times
                h2h[side]["cpu"] += cpu
                block[side] = statistics.median(times)
            h2h["round_ratios"].append(block["neural_tangents"] / block["phenolab"])

        # (5) phenolab's Hessian, against PyHessian's time and accuracy
        print("phenolab Hessian:", flush=True)
        ref, info, _ = hess_bench.reference(hess_model, hess_x, hess_y, check=False)
        floor, _ = hess_bench.phenolab_top(hess_model, hess_x, hess_y, 0, iters=300, tol=1e-10)

        def pyhessian_stats(runs: list[dict]) -> dict[str, float]:
            errors = [abs(r["eigenvalue"] - ref) / abs(ref) for r in runs]
            return {"time": statistics.median(r["time"] for r in runs),
                    "cpu": statistics.median(r["cpu"] for r in runs),
                    "hvps": statistics.median(r["hvps"] for r in runs), "err": statistics.median(errors),
                    "worst": max(errors)}

        runs = peers["hessian"]["runs"]
        pyh = pyhessian_stats(runs)
        reimpl_model = copy.deepcopy(hess_model)
        reimpl = hess_bench.over_seeds(lambda s: hess_bench.pyhessian_like_top(reimpl_model, hess_x, hess_y, s), ref)
        m_b, b = hess_bench.matched_accuracy(hess_model, hess_x, hess_y, ref, pyh["err"], limit=100)
        b_tol = hess_bench.over_seeds(
            lambda s: hess_bench.phenolab_top(hess_model, hess_x, hess_y, s, iters=100, tol=1e-3), ref)
        m_c, c = hess_bench.matched_time(hess_model, hess_x, hess_y, ref, pyh["time"], None)
        m_c64, c64 = hess_bench.matched_time(hess_model, hess_x, hess_y, ref, pyh["time"], torch.float64)

        # (6) Hessian head-to-head: PyHessian over the seeds and phenolab's (b) over the seeds, alternating
        print(f"Hessian head-to-head, {args.hess_rounds} rounds: PyHessian vs phenolab Lanczos {m_b} steps", flush=True)
        hh = {"pyhessian": [], "phenolab": [], "round_ratios": []}
        for r in range(args.hess_rounds):
            block = {}
            for side in (("pyhessian", "phenolab") if r % 2 == 0 else ("phenolab", "pyhessian")):
                if side == "pyhessian":
                    stats = pyhessian_stats(peer.ask("pyhessian")["runs"])
                else:
                    stats = hess_bench.over_seeds(
                        lambda s: hess_bench.phenolab_top(hess_model, hess_x, hess_y, s, iters=m_b), ref)
                hh[side].append(stats)
                block[side] = stats["time"]
            hh["round_ratios"].append(block["pyhessian"] / block["phenolab"])
    finally:
        peer.close()

    # (7) the table
    v = peers["versions"]
    n_params = sum(p.numel() for p in ntk_model.parameters())
    width = 74
    print(f"\n=== bench-peers: phenolab (torch {torch.__version__}) vs neural-tangents {v['neural_tangents']} "
          f"(jax {v['jax']}, jaxlib {v['jaxlib']}) and PyHessian {v['pyhessian']} (torch {v['torch']}); "
          f"one thread each ===")
    print(f"\nNTK: ReLU MLP 10-512-512-1, NTK parametrization, {n_params:,} parameters, n=256, float32; "
          f"median of {args.repeats} calls after a warm-up (at least 3 for methods slower than "
          f"{args.budget:.0f} s in all)")
    print(f"outputs of the neural-tangents net vs phenolab's: rel. diff {peers['ntk']['output_rel_diff']:.1e}")
    base = ph_ntk["layerwise"]["median"]
    base_cpu = ph_ntk["layerwise"]["cpu_median"]
    print(f"{'implementation':<{width}} {'median':>13} {'best':>13} {'CPU median':>13} {'err vs fp64':>12} "
          f"{'vs phenolab':>12} {'time / phenolab':>16} {'CPU / phenolab':>15}")
    labels = {"layerwise": "phenolab layerwise (per-layer Gram sum, no Jacobian)",
              "ntvp": "phenolab ntvp (torch.func jvp of vjp rows)",
              "jacobian": "phenolab jacobian (torch.func vmap(jacrev))"}
    ntk_rows = []
    for method, row in ph_ntk.items():
        ntk_rows.append((labels[method], row, relative(ph_kernels[method], ref_kernel),
                         relative(ph_kernels[method], ph_kernels["layerwise"])))
    for key, row in nt_rows.items():
        label = (f"neural-tangents {row['implementation'].lower().replace('_', ' ')}, vmap_axes={row['vmap_axes']}, "
                 f"x2={row['x2']}" + (" (default)" if row["default"] else "") + ("" if correct[key] else " WRONG"))
        ntk_rows.append((label, row, relative(nt_kernels[key], ref_kernel),
                         relative(nt_kernels[key], ph_kernels["layerwise"])))
    for label, row, e_ref, e_ph in ntk_rows:
        print(f"{label:<{width}} {fmt_ms(row['median'])} {fmt_ms(row['best'])} {fmt_ms(row['cpu_median'])} "
              f"{e_ref:12.1e} {e_ph:12.1e} {row['median'] / base:15.2f}x {row['cpu_median'] / base_cpu:14.2f}x")
    wrong = [k for k in nt_rows if not correct[k]]
    worst_kernel = max(relative(nt_kernels[k], ph_kernels["layerwise"]) for k in nt_rows if correct[k]) \
        if any(correct.values()) else float("inf")
    phenolab_vs_ref = relative(ph_kernels["layerwise"], ref_kernel)
    ph_calls = ", ".join(f"{m} {r['calls']}" for m, r in ph_ntk.items())
    nt_calls = ", ".join(str(r["calls"]) for r in nt_rows.values())
    nt_first = ", ".join(f"{r['first_call']:.1f}" for r in nt_rows.values())
    print(f"timed calls: phenolab {ph_calls}; neural-tangents {nt_calls} (rows in order); "
          f"neural-tangents first calls (jit compile + run): {nt_first} s")
    if wrong:
        print(f"WRONG: {len(wrong)} neural-tangents modes return a kernel that differs from the float64 reference by "
              f"more than {NTK_TOL:.0e}; they are left out of the targets")
    ph_med, nt_med = statistics.median(h2h["phenolab"]["times"]), statistics.median(h2h["neural_tangents"]["times"])
    ph_best, nt_best = min(h2h["phenolab"]["times"]), min(h2h["neural_tangents"]["times"])
    ph_cpu, nt_cpu = statistics.median(h2h["phenolab"]["cpu"]), statistics.median(h2h["neural_tangents"]["cpu"])
    speed_ntk = nt_med / ph_med
    print(f"head-to-head, {args.rounds} interleaved rounds of {args.calls} calls each: phenolab layerwise median "
          f"{1e3 * ph_med:.2f} ms (best {1e3 * ph_best:.2f}, CPU {1e3 * ph_cpu:.2f}), neural-tangents "
          f"{fastest_key} median {1e3 * nt_med:.2f} ms (best {1e3 * nt_best:.2f}, CPU {1e3 * nt_cpu:.2f}); "
          f"ratio {speed_ntk:.2f}x (best {nt_best / ph_best:.2f}x, CPU {nt_cpu / ph_cpu:.2f}x; per round "
          f"{min(h2h['round_ratios']):.2f}x to {max(h2h['round_ratios']):.2f}x)")

    print(f"\nHessian: tanh MLP 10-256-256-1, {peers['hessian']['parameters']:,} parameters, 2048 samples, MSE; "
          f"medians over seeds {seeds[0]}..{seeds[-1]}; times include building the gradient graph")
    print(f"reference lambda_max = {ref:.12f} (phenolab float64 Lanczos, {info['hvps']} HVPs, residual "
          f"{info['residuals'][0]:.1e}); peers' scipy eigsh float64 ({peers['hessian']['eigsh_reference_hvps']} HVPs): "
          f"rel. diff {abs(peers['hessian']['eigsh_reference'] - ref) / ref:.1e}; float32 floor "
          f"{abs(floor - ref) / ref:.1e}; outputs of the peer net vs phenolab's: rel. diff "
          f"{peers['hessian']['output_rel_diff']:.1e}")
    print(f"{'implementation':<{width}} {'time':>13} {'CPU time':>13} {'HVPs':>6} {'rel. error median / worst':>26} "
          f"{'time / phenolab (b)':>20}")
    hess_rows = [
        ("PyHessian hessian(...).eigenvalues(top_n=1)", pyh),
        ("PyHessian-style re-implementation (phenolab venv)", reimpl),
        (f"(b) phenolab Lanczos, {m_b} steps (PyHessian's accuracy)", b),
        ("    phenolab Lanczos, own stop at tol=1e-3", b_tol),
        (f"(c) phenolab Lanczos, {m_c} steps (PyHessian's time), fp32", c),
        (f"    phenolab Lanczos, {m_c64} steps (PyHessian's time), fp64", c64),
    ]
    for label, s in hess_rows:
        print(f"{label:<{width}} {fmt_ms(s['time'])} {fmt_ms(s['cpu'])} {s['hvps']:6.0f} {s['err']:13.1e} / "
              f"{s['worst']:.1e} {s['time'] / b['time']:19.2f}x")
    pyh_h2h = statistics.median(st["time"] for st in hh["pyhessian"])
    ph_h2h = statistics.median(st["time"] for st in hh["phenolab"])
    pyh_h2h_cpu = statistics.median(st["cpu"] for st in hh["pyhessian"])
    ph_h2h_cpu = statistics.median(st["cpu"] for st in hh["phenolab"])
    speed_hess = pyh_h2h / ph_h2h
    print(f"head-to-head, {args.hess_rounds} interleaved rounds over the seeds: "
          f"PyHessian median {1e3 * pyh_h2h:.1f} ms "
          f"(CPU {1e3 * pyh_h2h_cpu:.1f}), phenolab {m_b} steps {1e3 * ph_h2h:.1f} ms (CPU {1e3 * ph_h2h_cpu:.1f}); "
          f"ratio {speed_hess:.2f}x (CPU {pyh_h2h_cpu / ph_h2h_cpu:.2f}x; per round "
          f"{min(hh['round_ratios']):.2f}x to {max(hh['round_ratios']):.2f}x)")

    best_c = min(c["err"], c64["err"])
    acc_hess = pyh["err"] / best_c if best_c > 0 else float("inf")
    targets = [
        (worst_kernel <= NTK_TOL and phenolab_vs_ref <= NTK_TOL,
         f"NTK kernels equal: max rel. diff of the {sum(correct.values())} correct neural-tangents kernels vs "
         f"phenolab's = {worst_kernel:.1e} <= {NTK_TOL:.0e} (phenolab vs float64 reference: {phenolab_vs_ref:.1e})"),
        (speed_ntk >= NTK_SPEEDUP,
         f"NTK speed, head-to-head: fastest neural-tangents ({fastest_key}) {1e3 * nt_med:.2f} ms / phenolab "
         f"layerwise {1e3 * ph_med:.2f} ms = {speed_ntk:.2f}x >= {NTK_SPEEDUP:.0f}x (sweep: "
         f"{nt_rows[fastest_key]['median'] / base:.2f}x)"),
        (speed_hess >= HESS_SPEEDUP,
         f"Hessian at PyHessian's accuracy ({pyh['err']:.1e}), head-to-head: PyHessian {1e3 * pyh_h2h:.1f} ms / "
         f"phenolab {m_b} steps (error {b['err']:.1e}) {1e3 * ph_h2h:.1f} ms = {speed_hess:.2f}x >= "
         f"{HESS_SPEEDUP:.0f}x (sweep: {pyh['time'] / b['time']:.2f}x)"),
        (acc_hess >= HESS_ACCURACY,
         f"Hessian in PyHessian's time ({1e3 * pyh['time']:.1f} ms): error {pyh['err']:.1e} / phenolab's best "
         f"{best_c:.1e} = {acc_hess:.1e}x >= {HESS_ACCURACY:.0f}x (fp32 {pyh['err'] / c['err']:.1e}x, "
         f"fp64 {pyh['err'] / c64['err']:.1e}x)"),
    ]
    print("\ntargets:")
    for ok, line in targets:
        print(f"  [{'PASS' if ok else 'FAIL'}] {line}")
    total = time.perf_counter() - started
    print(f"\nwall time {total:.0f} s (peers' sweep {peer_seconds:.0f} s); details in {out / 'report.json'}")

    report = {
        "versions": {"phenolab_torch": torch.__version__, "peers": v},
        "ntk": {"phenolab": ph_ntk, "neural_tangents": nt_rows, "wrong_modes": wrong,
                "errors": {label: {"vs_fp64": e_ref, "vs_phenolab": e_ph} for label, _, e_ref, e_ph in ntk_rows},
                "fastest_neural_tangents": fastest_key, "head_to_head": h2h, "speedup": speed_ntk,
                "max_kernel_rel_diff": worst_kernel},
        "hessian": {"reference": ref, "peer_eigsh_reference": peers["hessian"]["eigsh_reference"],
                    "float32_floor": abs(floor - ref) / ref, "pyhessian": pyh, "pyhessian_runs": runs,
                    "reimplementation": reimpl, "matched_accuracy": {"steps": m_b, **b}, "own_stop": b_tol,
                    "matched_time_fp32": {"steps": m_c, **c}, "matched_time_fp64": {"steps": m_c64, **c64},
                    "head_to_head": hh, "speedup": speed_hess, "accuracy_ratio": acc_hess},
        "targets": [{"pass": ok, "line": line} for ok, line in targets],
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    return 1 if args.strict and not all(ok for ok, _ in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
