"""Local recovery near the global minima of a two-layer net: started next to the zero-error set Q*,
training lands in Q* once the sample size reaches the rank of the branch it starts on, and on a
nearby non-generalizing minimum below it.

Zhang, Zhang & Luo, "Geometry and Local Recovery of Global Minima of Two-layer Neural Networks at
Overparameterization", arXiv:2309.00508 (figure not identified). Setup and checks LGM-1 to LGM-4:
docs/specs/recovery.md (d = 3, width m = 4, target tanh(w* . x) with |w*| = 1, x ~ N(0, I)).
Branch B1 of Q*: one neuron equals the target, the others have a = 0 and free w; its Jacobian
rank, and codimension, is d + m = 7, so for n >= d + m the interpolating set near B1 *is* Q*.
Each run starts at a random point of B1 moved by N(0, eps^2) in every parameter, trains by
full-batch GD and is polished by Gauss-Newton (the protocol: "finish with L-BFGS to reach loss
about 1e-20") before its relative test error is measured on 2000 fresh points. The
pilot used GD alone (30k steps), whose slow convergence blurred the transition (exact
fractions 0.29, 0.25, 0.58, 0.83, 0.96 at n = 7, 8, 10, 13, 16); with polishing it is sharp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from phenolab.config import PosFloat, PosInt, Spec
from phenolab.experiments.base import Computation, Experiment, MeasureSpec, RunData, no_training, params_from, register
from phenolab.experiments.recovery import BranchParams, branch_starts
from phenolab.experiments.runner import failed_runs
from phenolab.experiments.verdict import Check, Verdict
from phenolab.report import plots

SOURCE = "arXiv:2309.00508 (local recovery near the global minima; docs/specs/recovery.md)"


class LandscapeCheck(Spec):
    """Checks LGM-1 to LGM-4 (check N = LGM-N; branch B1, threshold d + m), and phenolab's check at n = d + m."""

    exact_error: PosFloat = 1e-9  # a run is "exact" when e_test < this
    below_min_median: PosFloat = 1e-7  # check 1: n < d + m
    below_max_exact: float = 0.1
    above_offset: int = 6  # check 2: n >= d + m + above_offset
    above_max_median: PosFloat = 1e-12
    above_min_exact: float = 0.75
    monotone_slack: float = 0.1  # check 3
    at_rank_min_exact: float = 0.5  # phenolab: n = d + m already separates (the B1 rank)
    scaling_low: PosFloat = 3.0  # check 4: e_test(eps) / e_test(eps / 2) below separation, in [low, high]
    scaling_high: PosFloat = 5.0


class LandscapeConfig(MeasureSpec):
    experiment: str = "landscape-global-minima"
    seeds: list[int] = Field(default_factory=lambda: list(range(24)), min_length=1)
    d: PosInt = 3
    width: PosInt = 4
    sizes: list[PosInt] = [4, 6, 7, 8, 10, 13, 16]
    eps: PosFloat = 1e-2
    lr: PosFloat = 0.2
    steps: int = Field(default=5000, ge=0)
    polish: PosInt = 40  # Gauss-Newton iterations
    teacher_seed: int = 0
    n_test: PosInt = 2000
    check: LandscapeCheck = LandscapeCheck()

    @property
    def rank(self) -> int:
        """The Jacobian rank (and codimension) of Q* on branch B1: d + m."""
        return self.d + self.width


PRESETS = {
    "quick": {},
    "full": {"seeds": list(range(48)), "steps": 30000, "sizes": [4, 5, 6, 7, 8, 9, 10, 13, 16]},
    # the smallest run of the whole pipeline (contract tests): two trials, three sizes, 50 steps
    "smoke": {"seeds": [0, 1], "sizes": [4, 7, 10], "steps": 50, "polish": 2, "n_test": 50},
}


def _params(cfg: LandscapeConfig, eps: float, sizes: list[int]) -> BranchParams:
    return params_from(cfg, BranchParams, activation="tanh", a_star=1.0, w_norm=1.0, sizes=sizes, eps=eps)


def measure(cfg: LandscapeConfig) -> list[Computation]:
    below = [n for n in cfg.sizes if n < cfg.rank]
    return [Computation(f"eps={cfg.eps:g}", branch_starts, _params(cfg, cfg.eps, cfg.sizes)),
            Computation(f"eps={cfg.eps / 2:g}", branch_starts, _params(cfg, cfg.eps / 2, below))]


def analyze(cfg: LandscapeConfig, runs: list[RunData]) -> dict[str, Any]:
    failure = failed_runs(runs)
    if failure:
        return {"failure": failure}
    c = cfg.check
    full, half = runs[0].result, runs[1].result
    sizes = full["sizes"].tolist()
    e = full["e_test"]
    median = dict(zip(sizes, np.median(e, axis=1).tolist()))
    exact = dict(zip(sizes, np.mean(e < c.exact_error, axis=1).tolist()))
    below = [n for n in sizes if n < cfg.rank]
    above = [n for n in sizes if n >= cfg.rank + c.above_offset]
    ordered = [exact[n] for n in sorted(sizes)]
    ratios = {n: float(np.median(e[sizes.index(n)] / half["e_test"][i])) for i, n in enumerate(half["sizes"].tolist())}
    return {
        "median_e_test": {str(n): v for n, v in median.items()},
        "exact_fraction": {str(n): v for n, v in exact.items()},
        "median_train_loss": {str(n): float(v) for n, v in zip(sizes, np.median(full["train_loss"], axis=1))},
        "below_median": min((median[n] for n in below), default=None),
        "below_exact": max((exact[n] for n in below), default=None),
        "above_median": max((median[n] for n in above), default=None),
        "above_exact": min((exact[n] for n in above), default=None),
        "largest_drop": float(max([0.0] + [a - b for a, b in zip(ordered, ordered[1:])])),
        "at_rank_exact": exact.get(cfg.rank),
        "eps_ratio": {str(n): v for n, v in ratios.items()},
        "eps_ratio_range": [min(ratios.values()), max(ratios.values())] if ratios else None,
        "failure": "",
    }


def verdict(cfg: LandscapeConfig, s: dict[str, Any]) -> Verdict:
    if s.get("failure"):
        return Verdict("landscape-global-minima", (), source=SOURCE, failure=s["failure"])
    c, r = cfg.check, cfg.rank
    lo, hi = s["eps_ratio_range"] or (None, None)
    checks = (
        Check(f"median e_test, n < d + m = {r} (min)", s["below_median"], ">=", c.below_min_median,
              paper="4e-5 and 6e-6 at n = 4, 6"),
        Check(f"exact fraction (e_test < {c.exact_error:g}), n < {r} (max)", s["below_exact"], "<=",
              c.below_max_exact, paper="0/24"),
        Check(f"median e_test, n >= {r + c.above_offset} (max)", s["above_median"], "<=", c.above_max_median,
              paper="3e-16 and 1e-21 at n = 13, 16"),
        Check(f"exact fraction, n >= {r + c.above_offset} (min)", s["above_exact"], ">=", c.above_min_exact,
              paper="0.83 and 0.96"),
        Check("largest drop of the exact fraction as n grows", s["largest_drop"], "<=", c.monotone_slack,
              paper="0, 0, 0.29, 0.25, 0.58, 0.83, 0.96"),
        Check(f"exact fraction at n = d + m = {r} (phenolab: the B1 rank separates)", s["at_rank_exact"], ">=",
              c.at_rank_min_exact, paper="0.29 (GD only, not polished)"),
        Check("e_test(eps) / e_test(eps/2) below separation (min of medians)", lo, ">=", c.scaling_low,
              paper="3-5 (O(eps^2): a nearby non-generalizing minimum)"),
        Check("e_test(eps) / e_test(eps/2) below separation (max of medians)", hi, "<=", c.scaling_high,
              paper="3-5"),
    )
    return Verdict("landscape-global-minima", checks, source=SOURCE, details={
        "median e_test by n": s["median_e_test"], "exact fraction by n": s["exact_fraction"],
        "median final train loss by n": s["median_train_loss"], "eps-halving ratio by n": s["eps_ratio"]})


def figures(cfg: LandscapeConfig, runs: list[RunData], s: dict[str, Any]) -> dict[str, Any]:
    if s.get("failure"):
        return {}
    sizes = [int(n) for n in s["exact_fraction"]]
    marks = {"B1 rank d + m": cfg.rank, "parameters M": cfg.width * (cfg.d + 1)}
    return {
        "exact fraction vs sample size": plots.curves(
            sizes, {"exact (e_test < %g)" % cfg.check.exact_error: [s["exact_fraction"][str(n)] for n in sizes]},
            title=f"local recovery from B1 + N(0, {cfg.eps:g}^2)", ylabel="fraction of seeds", xlabel="sample size n",
            markers=True, marks=marks),
        "median test error vs sample size": plots.curves(
            sizes, {"median e_test": [max(s["median_e_test"][str(n)], 1e-40) for n in sizes]},
            title="relative test error after polishing", ylabel="e_test", xlabel="sample size n", logy=True,
            markers=True, marks=marks),
    }


EXPERIMENT = register(Experiment(
    name="landscape-global-minima",
    title="Local recovery near the global minima (branch B1)",
    source=SOURCE,
    claim="Started next to the zero-error set of a width-4 tanh net, training recovers a one-neuron target "
          "exactly once the sample size reaches the branch's rank d + m = 7, and below it lands on a nearby "
          "minimum with test error O(eps^2).",
    config=LandscapeConfig,
    presets=PRESETS,
    analyze=analyze,
    verdict=verdict,
    figures=figures,
    plan=no_training,
    measure=measure,
))
