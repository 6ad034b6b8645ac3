"""Gaussian-filter split and the `filter` probe (arXiv 1901.06523)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phenolab.probes import gaussian_filter_split, run_probe
from phenolab.tasks.base import Task

from fn_model import Fn


def test_split_against_hand_computation():
    # x = 0, 1, 3 -> D = [[0,1,9],[1,0,4],[9,4,0]]; s = 0.5 -> G = exp(-D)
    e1, e4, e9 = 0.36787944117144233, 0.01831563888873418, 0.00012340980408667956
    assert e4 == pytest.approx(math.exp(-4))
    expected_low = [
        (1 * 1 + e1 * 0 + e9 * 2) / (1 + e1 + e9),  # 0.73117305
        (e1 * 1 + 1 * 0 + e4 * 2) / (e1 + 1 + e4),  # 0.29181370
        (e9 * 1 + e4 * 0 + 1 * 2) / (e9 + e4 + 1),  # 1.96391076
    ]
    low, high = gaussian_filter_split(np.array([0.0, 1.0, 3.0]), np.array([1.0, 0.0, 2.0]), 0.5)
    assert np.allclose(low, expected_low, atol=1e-12)
    assert np.allclose(low, [0.73117305, 0.29181370, 1.96391076], atol=1e-8)
    assert np.allclose(high, [1 - 0.73117305, -0.29181370, 2 - 1.96391076], atol=1e-8)


def test_split_handles_matrices_and_multidimensional_inputs():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # D_01 = 25
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    low, high = gaussian_filter_split(x, y, 12.5)  # G_01 = exp(-1)
    w = math.exp(-1) / (1 + math.exp(-1))
    assert np.allclose(low, [[1 - w, w], [w, 1 - w]]) and np.allclose(low + high, y)


def _smooth_rough_task():
    x = torch.linspace(-np.pi, np.pi, 400, dtype=torch.float64)[:, None]
    smooth, rough = torch.sin(x), 0.5 * torch.sin(20 * x)
    return Task(x_train=x, y_train=smooth + rough), smooth, rough


def test_filter_probe_perfect_zero_and_smooth_models():
    task, smooth, rough = _smooth_rough_task()
    perfect = run_probe("filter", Fn(lambda x: torch.sin(x) + 0.5 * torch.sin(20 * x)), task)
    assert np.allclose(perfect["e_low"], 0, atol=1e-12) and np.allclose(perfect["e_high"], 0, atol=1e-12)
    assert perfect["s"].shape == (3,) and {"e_low_2", "e_high_2"} <= set(perfect)
    zero = run_probe("filter", Fn(lambda x: torch.zeros_like(x)), task)
    assert np.allclose(zero["e_low"], 1) and np.allclose(zero["e_high"], 1)
    smooth_only = run_probe("filter", Fn(torch.sin), task)
    assert np.all(smooth_only["e_low"] < 0.05) and np.all(smooth_only["e_high"] > 0.8)


def test_smooth_part_dominates_y_low():
    task, smooth, rough = _smooth_rough_task()
    out = run_probe("filter", Fn(torch.sin), task, deltas=[0.05])
    x = task.x_train.numpy()
    d = (x - x.T) ** 2
    assert out["s"][0] == pytest.approx(0.05 * np.median(d[np.triu_indices(len(x), 1)]))
    low, high = gaussian_filter_split(x, task.y_train.numpy(), out["s"][0])
    smooth, rough = smooth.numpy(), rough.numpy()
    assert np.linalg.norm(low - smooth) < 0.2 * np.linalg.norm(smooth)
    assert abs(np.sum(low * rough)) < 0.02 * np.linalg.norm(low) * np.linalg.norm(rough)
    assert np.linalg.norm(high - rough) < 0.3 * np.linalg.norm(rough)


def test_filter_probe_scales_and_labels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 3, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    task = Task(x_train=x, y_train=labels, kind="classification")
    onehot = torch.nn.functional.one_hot(labels, 4).float()
    lookup = {tuple(r.tolist()): i for i, r in enumerate(x)}
    oracle = Fn(lambda z: onehot[[lookup[tuple(r.tolist())] for r in z]])
    out = run_probe("filter", oracle, task, scales=[0.1, 1.0])
    assert np.allclose(out["s"], [0.1, 1.0]) and np.allclose(out["e_low"], 0) and np.allclose(out["e_high"], 0)
    with pytest.raises(ValueError, match="either"):
        run_probe("filter", oracle, task, scales=[1.0], deltas=[0.1])


def test_filter_probe_sees_in_place_changes_of_the_inputs():
    task, _, _ = _smooth_rough_task()
    model = Fn(torch.sin)
    before = run_probe("filter", model, task, scales=[0.2])
    x_copy = task.x_train.clone()
    task.x_train.mul_(0.5)  # cached kernels must not be reused
    after = run_probe("filter", model, task, scales=[0.2])
    fresh = run_probe("filter", model, Task(x_train=x_copy * 0.5, y_train=task.y_train), scales=[0.2])
    assert not np.isclose(before["e_low"][0], after["e_low"][0])
    assert np.isclose(after["e_low"][0], fresh["e_low"][0]) and np.isclose(after["e_high"][0], fresh["e_high"][0])


def test_the_probe_names_its_per_scale_keys():
    from phenolab.probes.filtering import filter_keys, scale_keys

    task, _, _ = _smooth_rough_task()
    out = run_probe("filter", Fn(torch.sin), task, deltas=[0.1, 0.2])
    for j in range(2):
        low, high = scale_keys(j)
        assert out[low] == out["e_low"][j] and out[high] == out["e_high"][j]
    assert filter_keys(2) == [("filter/e_low_0", "filter/e_high_0"), ("filter/e_low_1", "filter/e_high_1")]
