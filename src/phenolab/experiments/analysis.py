"""Small helpers that turn metric series into the numbers verdicts compare, and format them.

Shared by the experiments: thresholds crossed (`first_step_below`), robust means and medians of
what finished (`mean_or_none`, `median_or_none`), log-log slopes (`fit_line`, `fit_slope`), the
monotonicity of a sequence (`min_step`, `max_step`), seed means of curves (`mean_curve`,
`mean_normalized_curve`), loss spikes (`detect_spikes`), a rank correlation over a window
(`window_spearman`), and one number format for verdict texts (`fmt`, `round_sig`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd


def first_step_below(series: pd.Series, threshold: float) -> int | None:
    """The first step at which `series` < `threshold`, or None if it never gets there."""
    hits = series.index[series.to_numpy() < threshold]
    return int(hits[0]) if len(hits) else None


def fraction_true(mask: Iterable[bool]) -> float:
    values = list(mask)
    return float(np.mean(values)) if values else math.nan


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def median_or_none(values: Iterable[float | None]) -> float | None:
    """Median of the finite values, or None if there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def mean_or_none(values: Iterable[float | None], *, all_finite: bool = False) -> float | None:
    """Mean of the finite values, or None if there are none; with `all_finite`, None as soon as
    one value is missing or not finite."""
    values = list(values)
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite or (all_finite and len(finite) != len(values)):
        return None
    return float(np.mean(finite))


def finite_or_none(x: float | None) -> float | None:
    """`x` as a float, or None when it is missing or not finite (NaN, inf)."""
    return float(x) if x is not None and math.isfinite(x) else None


def fit_line(x: Sequence[float], y: Sequence[float], log: bool = True) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through (x, y), by default through
    (log x, log y): a power law y = e^intercept x^slope."""
    x_arr, y_arr = (np.log(x), np.log(y)) if log else (np.asarray(x, float), np.asarray(y, float))
    slope, intercept = np.polyfit(x_arr, y_arr, 1)
    return float(slope), float(intercept)


def fit_slope(x: Sequence[float], y: Sequence[float], log: bool = True) -> float:
    """The slope of `fit_line`: by default that of log y against log x."""
    return fit_line(x, y, log)[0]


def min_step(values: Sequence[float | None]) -> float | None:
    """The smallest difference values[i+1] - values[i] (> 0 iff strictly increasing, >= 0 iff
    non-decreasing); None with fewer than two values or any missing or not finite."""
    if len(values) < 2 or not all(_finite(v) for v in values):
        return None
    return float(min(b - a for a, b in zip(values, values[1:])))  # type: ignore[operator]


def max_step(values: Sequence[float | None]) -> float | None:
    """The largest difference values[i+1] - values[i] (< 0 iff strictly decreasing); None as `min_step`."""
    if len(values) < 2 or not all(_finite(v) for v in values):
        return None
    return float(max(b - a for a, b in zip(values, values[1:])))  # type: ignore[operator]


def mean_curve(curves: Sequence[pd.Series]) -> pd.Series:
    """Mean of `curves` at the steps where every one has a value."""
    return pd.concat(list(curves), axis=1, join="inner").mean(axis=1)


def mean_normalized_curve(curves: Sequence[pd.Series]) -> pd.Series:
    """Mean of the curves divided by their first value (steps where every one has a value)."""
    return mean_curve([c / c.iloc[0] for c in curves])


def nearest_index(steps: np.ndarray, step: float) -> int:
    """Index of the entry of `steps` closest to `step` (the earlier one on a tie)."""
    return int(np.argmin(np.abs(np.asarray(steps) - step)))


@dataclass(frozen=True)
class Spike:
    """One loss spike: steps of onset t_o, peak t_p and end t_e (None: not back below L(t_o))."""

    onset: int
    peak: int
    end: int | None
    onset_loss: float
    peak_loss: float

    @property
    def factor(self) -> float:
        """L(t_p) / L(t_o)."""
        return self.peak_loss / self.onset_loss if self.onset_loss > 0 else math.inf


def detect_spikes(steps: np.ndarray, loss: np.ndarray, factor: float = 10.0) -> list[Spike]:
    """Loss spikes by the rule of docs/specs/loss-spike.md (arXiv:2305.12133).

    A run of increases L(s_i) < L(s_{i+1}) < ... < L(s_j) starting at the onset t_o = s_i and
    ending at the peak t_p = s_j is a spike when L(t_p) >= factor * L(t_o); its end t_e is the
    first step after t_p with L < L(t_o) (None if the loss never gets there). The search for the
    next onset continues from the peak, so spikes are ordered and do not overlap in their ascents.
    A decrease inside an ascent ends the run there (the protocol's strict "run of increases").
    `steps` and `loss` are aligned 1-D arrays in step order; NaN losses never count as increases.
    """
    steps = np.asarray(steps, dtype=np.int64).ravel()
    loss = np.asarray(loss, dtype=np.float64).ravel()
    if steps.shape != loss.shape:
        raise ValueError(f"steps {steps.shape} and loss {loss.shape} differ in shape")
    up = loss[1:] > loss[:-1]  # False wherever a NaN is involved
    spikes: list[Spike] = []
    i, n = 0, len(loss)
    while i < n - 1:
        if not up[i]:
            i += 1
            continue
        j = i + 1
        while j < n - 1 and up[j]:
            j += 1
        if loss[j] >= factor * loss[i]:
            below = np.flatnonzero(loss[j + 1:] < loss[i])
            end = int(steps[j + 1 + below[0]]) if below.size else None
            spikes.append(Spike(int(steps[i]), int(steps[j]), end, float(loss[i]), float(loss[j])))
        i = j
    return spikes


def window_spearman(a: pd.Series, b: pd.Series, start: float, stop: float) -> tuple[float | None, int]:
    """Spearman's rank correlation of `a` and `b` over the steps t of `b` with start <= t <= stop
    (`a` read at those steps), and the number of finite pairs used. None with fewer than 3 pairs
    or when either is constant there."""
    from scipy.stats import spearmanr

    steps = b.index.to_numpy()
    window = (steps >= start) & (steps <= stop)
    xs, ys = a.reindex(steps[window]).to_numpy(), b.to_numpy()[window]
    ok = np.isfinite(xs) & np.isfinite(ys)
    if ok.sum() < 3 or np.ptp(xs[ok]) == 0 or np.ptp(ys[ok]) == 0:
        return None, int(ok.sum())
    return finite_or_none(float(spearmanr(xs[ok], ys[ok]).statistic)), int(ok.sum())


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for a verdict's text: `digits` significant digits, "n/a" when missing or not finite."""
    return f"{x:.{digits}g}" if _finite(x) else "n/a"


def round_sig(x: Any, digits: int = 5) -> Any:
    """Floats (also inside lists) rounded to `digits` significant digits, non-finite ones to None;
    anything else unchanged: numbers for a verdict's details."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}") if math.isfinite(x) else None
    if isinstance(x, list):
        return [round_sig(v, digits) for v in x]
    return x
