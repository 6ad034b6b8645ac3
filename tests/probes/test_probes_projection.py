"""The `projection` probe: Delta_F along one direction of a high-dimensional input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phenolab.probes import first_principal_component, run_probe
from phenolab.tasks.base import Task

from fn_model import Fn

P = np.array([0.6, 0.8])


def _ridge(x):
    return torch.sin(3 * (x @ torch.tensor(P, dtype=x.dtype)))[:, None]


def _task():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 2, generator=g, dtype=torch.float64) * 6 - 3
    return Task(x_train=x, y_train=_ridge(x))


def test_ridge_target_exact_model_has_zero_error_and_peak_at_3_over_2pi():
    out = run_probe("projection", Fn(_ridge), _task(), direction=P, spectra=True)
    assert out["rel_err"].size >= 1 and np.allclose(out["rel_err"], 0, atol=1e-10)
    assert out["rel_err_0"] == pytest.approx(0, abs=1e-10)
    k_top = out["k_grid"][np.argmax(out["target_spectrum"])]
    assert k_top == pytest.approx(3 / (2 * np.pi), abs=0.03)  # cycles per unit of p.x
    assert k_top in out["k"]


def test_zero_model_has_error_one_and_direction_is_normalised():
    out = run_probe("projection", Fn(lambda x: torch.zeros(len(x), 1, dtype=x.dtype)), _task(), direction=5 * P)
    assert np.allclose(out["rel_err"], 1)
    ref = run_probe("projection", Fn(lambda x: torch.zeros(len(x), 1, dtype=x.dtype)), _task(), direction=P)
    assert np.allclose(out["k"], ref["k"])


def test_first_principal_component_finds_the_long_axis():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * np.array([0.1, 0.2, 0.1])
    x += np.outer(rng.normal(size=500) * 3, [0.6, 0.8, 0.0])
    p = first_principal_component(x)
    assert np.allclose(p, [0.6, 0.8, 0.0], atol=0.02)


def test_default_direction_on_anisotropic_data():
    rng = np.random.default_rng(1)
    t = rng.uniform(-3, 3, size=800)
    x = torch.tensor(np.outer(t, P) + rng.normal(size=(800, 2)) * 0.05 * np.array([0.8, -0.6]))
    task = Task(x_train=x, y_train=_ridge(x))
    out = run_probe("projection", Fn(_ridge), task)
    assert np.allclose(out["rel_err"], 0, atol=1e-10)
    assert np.any(np.abs(out["k"] - 3 / (2 * np.pi)) < 0.03)
