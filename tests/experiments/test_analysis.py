"""The shared series statistics and number formats of `phenolab.experiments.analysis`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from phenolab.experiments.analysis import (
    Spike,
    detect_spikes,
    finite_or_none,
    first_step_below,
    fit_line,
    fit_slope,
    fmt,
    fraction_true,
    max_step,
    mean_curve,
    mean_normalized_curve,
    mean_or_none,
    median_or_none,
    min_step,
    nearest_index,
    round_sig,
    window_spearman,
)


def test_fit_slope_matches_numpy_and_power_laws():
    widths = [100, 400, 1600, 6400]
    assert fit_slope(widths, [w ** 0.3 for w in widths]) == pytest.approx(0.3)
    assert fit_slope(widths, [5.0 * w ** -0.5 for w in widths]) == pytest.approx(-0.5)
    slope, intercept = fit_line(widths, [5.0 * w ** -0.5 for w in widths])
    assert (slope, intercept) == pytest.approx((-0.5, math.log(5.0)))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(1, 10, 7), rng.uniform(1, 10, 7)
    assert fit_slope(x, y) == float(np.polyfit(np.log(x), np.log(y), 1)[0])  # bit for bit: verdicts unchanged
    assert fit_line(x, y, log=False) == pytest.approx(tuple(np.polyfit(x, y, 1)))
    assert fit_slope([1, 2, 3], [2, 4, 6], log=False) == pytest.approx(2.0)


def test_means_and_medians_of_what_finished():
    assert mean_or_none([1.0, 2.0, None, math.nan, 6.0]) == 3.0
    assert mean_or_none([1.0, 2.0, math.nan], all_finite=True) is None
    assert mean_or_none([1.0, 2.0], all_finite=True) == 1.5
    assert mean_or_none([]) is None and mean_or_none([None, math.inf]) is None
    assert median_or_none([3.0, None, 1.0, 2.0, math.nan]) == 2.0 and median_or_none([None]) is None
    assert finite_or_none(2) == 2.0 and finite_or_none(math.nan) is None and finite_or_none(None) is None
    assert fraction_true([True, False, True, True]) == 0.75 and math.isnan(fraction_true([]))


def test_steps_between_neighbours():
    assert min_step([1.0, 2.0, 2.0, 5.0]) == 0.0
    assert min_step([3.0, 2.0, 4.0]) == -1.0
    assert max_step([3.0, 2.0, 4.0]) == 2.0 and max_step([4.0, 2.0, 1.0]) == -1.0
    for bad in ([1.0], [1.0, math.nan], [1.0, None], []):
        assert min_step(bad) is None and max_step(bad) is None
    assert isinstance(min_step([1, 3]), float)


def test_curves_and_steps():
    s = pd.Series([1.0, 0.5, 0.05, 0.01], index=[0, 10, 20, 30])
    assert first_step_below(s, 0.1) == 20 and first_step_below(s, 0.001) is None
    a = pd.Series([2.0, 1.0, 0.5], index=[0, 10, 20])
    b = pd.Series([4.0, 4.0], index=[0, 10])
    pd.testing.assert_series_equal(mean_curve([a, b]), pd.Series([3.0, 2.5], index=[0, 10]))
    pd.testing.assert_series_equal(mean_normalized_curve([a, b]), pd.Series([1.0, 0.75], index=[0, 10]))
    assert nearest_index(np.array([0, 10, 20]), 14) == 1 and nearest_index(np.array([0, 10, 20]), 15) == 1
    assert nearest_index(np.array([0, 10, 20]), 16) == 2


def test_detect_spikes():
    loss = np.array([1.0, 0.5, 0.6, 2.0, 8.0, 3.0, 0.4, 0.3])
    steps = np.arange(len(loss)) * 10
    assert detect_spikes(steps, loss) == [Spike(10, 40, 60, 0.5, 8.0)]
    assert detect_spikes(steps, loss, factor=20.0) == []
    assert Spike(10, 40, 60, 0.5, 8.0).factor == 16.0
    with pytest.raises(ValueError):
        detect_spikes(steps[:-1], loss)


def test_window_spearman_matches_scipy():
    steps = np.arange(0, 100, 10)
    a = pd.Series(np.linspace(1, 0, 10) + 0.01 * np.sin(steps), index=steps)
    b = pd.Series(np.linspace(0, 1, 10) ** 2, index=steps)
    rho, n = window_spearman(a, b, 20, 70)
    window = (steps >= 20) & (steps <= 70)
    assert n == 6 and rho == pytest.approx(spearmanr(a[window], b[window]).statistic)
    assert window_spearman(a, b, 0, 10) == (None, 2)  # fewer than 3 pairs
    assert window_spearman(a, pd.Series(1.0, index=steps), 0, 90)[0] is None  # constant


def test_formats():
    assert fmt(0.123456) == "0.1235" and fmt(123456.0) == "1.235e+05" and fmt(2.0) == "2"
    assert fmt(0.123456, 2) == "0.12" and fmt(None) == "n/a" and fmt(math.nan) == "n/a" and fmt(math.inf) == "n/a"
    assert round_sig(0.123456789) == 0.12346 and round_sig(math.nan) is None
    assert round_sig([1.23456789, "x", 3]) == [1.2346, "x", 3] and round_sig("t_o") == "t_o"
