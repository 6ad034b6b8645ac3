"""1-D DFT measurements: `spectrum_peaks`, `relative_spectral_error` and the `frequency` probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.probes import local_maxima, relative_spectral_error, run_probe, spectrum_peaks
from phenolab.tasks.base import Task

from fn_model import Fn

N = 64
X_PERIODIC = 2 * np.pi * np.arange(N) / N  # sin(m x) sits exactly in DFT bin m


def _target(x):
    return np.sin(x) + 2 * np.sin(3 * x) + 3 * np.sin(5 * x)


def test_peaks_of_canonical_target_on_101_points():
    x = np.linspace(-5, 5, 101)
    # bin k has angular frequency 2 pi k / (101 * 0.1): 1, 3, 5 rad fall nearest bins 2, 5, 8
    assert spectrum_peaks(_target(x)).tolist() == [2, 5, 8]
    assert spectrum_peaks(_target(x), max_peaks=2).tolist() == [2, 5]


def test_peaks_on_periodic_grid_are_exact_bins():
    assert spectrum_peaks(_target(X_PERIODIC)).tolist() == [1, 3, 5]
    assert spectrum_peaks(np.sin(7 * X_PERIODIC)).tolist() == [7]


def test_local_maxima_are_strict_interior_and_above_floor():
    assert local_maxima(np.array([0.0, 1.0, 1.0, 0.0])).tolist() == []  # plateau: not strict
    assert local_maxima(np.array([5.0, 1.0, 2.0, 1.0, 3.0])).tolist() == [2]  # endpoints excluded
    mag = np.array([0.0, 1000.0, 0.0, 0.5, 0.0, 2.0, 0.0])
    assert local_maxima(mag).tolist() == [1, 5]  # 0.5 < 1e-3 * 1000 is a ripple
    assert local_maxima(mag, floor=1e-4).tolist() == [1, 3, 5]


def test_relative_spectral_error_values():
    y = _target(X_PERIODIC)
    peaks = [1, 3, 5]
    assert np.allclose(relative_spectral_error(y, y, peaks), 0.0)
    assert np.allclose(relative_spectral_error(np.zeros(N), y, peaks), 1.0)
    # remove the 3 rad component: its peak has error |DFT(2 sin 3x)(3)| / |DFT(y)(3)| = 1
    assert np.allclose(relative_spectral_error(y - 2 * np.sin(3 * X_PERIODIC), y, peaks), [0, 1, 0], atol=1e-12)
    # remove a quarter of the 5 rad component: 0.75 / 3 of it is missing -> 0.25
    assert np.allclose(relative_spectral_error(y - 0.75 * np.sin(5 * X_PERIODIC), y, peaks), [0, 0, 0.25], atol=1e-12)


def _grid_task(x: np.ndarray, grid: bool = True) -> Task:
    xt = torch.tensor(x, dtype=torch.float64)[:, None]
    return Task(x_train=xt, y_train=torch.tensor(_target(x))[:, None], grid=grid)


def test_frequency_probe_on_exact_and_partial_models():
    task = _grid_task(X_PERIODIC)
    exact = run_probe("frequency", Fn(lambda x: torch.sin(x) + 2 * torch.sin(3 * x) + 3 * torch.sin(5 * x)), task)
    assert exact["peak_index"].tolist() == [1, 3, 5]
    assert np.allclose(exact["peak_freq"], [1, 3, 5])
    assert np.allclose(exact["rel_err"], 0, atol=1e-12)
    assert {"rel_err_0", "rel_err_1", "rel_err_2"} <= set(exact) and "output_spectrum" not in exact
    low_only = run_probe("frequency", Fn(torch.sin), task, spectra=True)
    assert np.allclose(low_only["rel_err"], [0, 1, 1], atol=1e-12)
    assert low_only["rel_err_1"] == pytest.approx(1.0)
    assert low_only["target_spectrum"].shape == (N // 2 + 1,)
    assert low_only["output_spectrum"][1] == pytest.approx(N / 2)
    only_two = run_probe("frequency", Fn(torch.sin), task, max_peaks=2, peaks=None)
    assert only_two["rel_err"].shape == (2,) and "rel_err_2" not in only_two
    explicit = run_probe("frequency", Fn(torch.sin), task, peaks=[5])
    assert explicit["peak_index"].tolist() == [5] and explicit["rel_err_0"] == pytest.approx(1.0)


def test_frequency_probe_sorts_unsorted_inputs():
    perm = np.random.default_rng(0).permutation(N)
    task = _grid_task(X_PERIODIC[perm], grid=False)
    out = run_probe("frequency", Fn(torch.sin), task)
    assert out["peak_index"].tolist() == [1, 3, 5]
    assert np.allclose(out["rel_err"], [0, 1, 1], atol=1e-12)


def test_frequency_probe_on_user_sequential():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))  # float32, task is float64
    task = _grid_task(np.linspace(-5, 5, 101))
    out = run_probe("frequency", net, task, max_peaks=3)
    x = task.x_train.float()
    with torch.no_grad():
        h = net(x)[:, 0].double().numpy()
    expected = relative_spectral_error(h, task.y_train[:, 0].numpy(), [2, 5, 8])
    assert np.allclose(out["rel_err"], expected, rtol=1e-5)
    assert np.allclose(out["peak_freq"], 2 * np.pi * np.array([2, 5, 8]) / (101 * 0.1))


def test_frequency_probe_rejects_multidimensional_inputs():
    task = Task(x_train=torch.zeros(10, 2), y_train=torch.zeros(10, 1))
    with pytest.raises(ValueError, match="projection"):
        run_probe("frequency", nn.Linear(2, 1), task)


def test_the_probe_names_its_per_peak_keys():
    from phenolab.probes.frequency import frequency_keys, peak_key

    out = run_probe("frequency", Fn(torch.sin), _grid_task(X_PERIODIC))
    assert [peak_key(j) for j in range(3)] == [k for k in out if k.startswith("rel_err_")]
    assert frequency_keys(3) == ["frequency/rel_err_0", "frequency/rel_err_1", "frequency/rel_err_2"]
    assert frequency_keys(1, "projection") == ["projection/rel_err_0"] and frequency_keys(0) == []
