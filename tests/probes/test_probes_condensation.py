"""Condensation measurements against hand values and direct computation; the `condensation` and
`relative_distance` probes on phenolab's MLP and on user modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from phenolab.config import MLPSpec
from phenolab.models import build_model
from phenolab.probes import run_probe
from phenolab.probes.condensation import (
    big_clusters,
    condensed_directions,
    cosine_matrix,
    display_order,
    features_1d,
    greedy_clusters,
    neuron_vectors,
    pair_fraction,
    relative_distance,
    top_orientation_share,
    top_singular_energy,
)
from phenolab.probes.registry import needs_reference
from phenolab.tasks.base import Task

from fn_model import Fn


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------ pure functions
def test_features_1d_hand_values():
    w = np.array([1.0, 0.0, 0.0, -1.0, 3.0])
    b = np.array([0.0, 1.0, -1.0, 0.0, 4.0])
    a = np.array([2.0, -1.0, 0.5, 1.0, -2.0])
    angle, amplitude = features_1d(w, b, a)
    np.testing.assert_allclose(angle, [0.0, math.pi / 2, -math.pi / 2, math.pi, math.atan2(4, 3)])
    np.testing.assert_allclose(amplitude, [2.0, 1.0, 0.5, 1.0, 10.0])


def test_features_1d_matches_paper_formula_and_multi_output_norm():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((6, 1)), rng.standard_normal(6)
    a = rng.standard_normal((6, 3))
    angle, amplitude = features_1d(torch.as_tensor(w), torch.as_tensor(b), torch.as_tensor(a))
    r = np.sqrt(w[:, 0] ** 2 + b**2)
    np.testing.assert_allclose(angle, np.sign(b) * np.arccos(w[:, 0] / r))
    np.testing.assert_allclose(amplitude, np.linalg.norm(a, axis=1) * r)
    with pytest.raises(ValueError, match="1-D input"):
        features_1d(np.ones((3, 2)), None, np.ones(3))


def test_cosine_matrix_matches_direct_computation_and_zero_rows():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((5, 4))
    u[3] = 0.0
    D = cosine_matrix(u)
    for k in range(5):
        for j in range(5):
            nk, nl = np.linalg.norm(u[k]), np.linalg.norm(u[j])
            want = 0.0 if nk == 0 or nl == 0 else u[k] @ u[j] / (nk * nl)
            assert D[k, j] == pytest.approx(want, abs=1e-12)


def test_neuron_vectors_append_bias():
    u = neuron_vectors(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([5.0, 6.0]))
    np.testing.assert_array_equal(u, [[1, 2, 5], [3, 4, 6]])
    np.testing.assert_array_equal(neuron_vectors(np.ones((2, 2)), None), np.ones((2, 2)))


def _three_groups(noise: int = 6, d: int = 10, seed: int = 2):
    """Rows of 3 tight groups (cos > 0.99 to their centre) at scattered indices, plus noise rows."""
    rng = np.random.default_rng(seed)
    centres = [_unit(rng, d) for _ in range(3)]
    labels = np.array([0] * 5 + [1] * 4 + [2] * 3 + [-1] * noise)
    labels = labels[rng.permutation(len(labels))]
    u = np.stack([
        (centres[g] + 0.03 * _unit(rng, d)) * rng.uniform(0.5, 2) if g >= 0 else _unit(rng, d)
        for g in labels
    ])
    return u, labels


def test_greedy_clusters_find_constructed_groups_exactly():
    u, labels = _three_groups()
    clusters = greedy_clusters(cosine_matrix(u), threshold=0.9)
    want = [np.flatnonzero(labels == g).tolist() for g in range(3)]
    want += [[k] for k in np.flatnonzero(labels == -1)]
    assert sorted(clusters) == sorted(want)
    assert sorted(k for c in clusters for k in c) == list(range(len(u)))
    # index order: clusters come in the order of their smallest index (each one's seed)
    assert [c[0] for c in clusters] == sorted(c[0] for c in clusters)


def test_greedy_clusters_signed_and_unsigned():
    e = np.array([1.0, 0.0, 0.0])
    u = np.stack([e, -e, 2 * e, np.array([0.0, 1.0, 0.0])])
    D = cosine_matrix(u)
    assert greedy_clusters(D, 0.9, signed=True) == [[0, 2], [1], [3]]
    assert greedy_clusters(D, 0.9, signed=False) == [[0, 1, 2], [3]]
    assert greedy_clusters(D, 0.9, order=[3, 1, 0, 2]) == [[3], [1], [0, 2]]
    with pytest.raises(ValueError, match="permutation"):
        greedy_clusters(D, order=[0, 1])


def test_display_order_makes_groups_contiguous():
    u, labels = _three_groups(noise=0)
    order = display_order(cosine_matrix(u))
    runs = [labels[order][0]] + [g for prev, g in zip(labels[order][:-1], labels[order][1:]) if g != prev]
    assert sorted(runs) == [0, 1, 2]
    assert sorted(order) == list(range(len(u)))


def test_condensed_directions_two_opposite_directions():
    rng = np.random.default_rng(3)
    d, e = 6, _unit(rng, 6)
    big = np.stack([e * s * rng.uniform(0.5, 2) for s in [1] * 10 + [-1] * 10])
    small = rng.standard_normal((30, d))
    u = np.concatenate([big, small])
    amplitude = np.concatenate([np.full(20, 0.95 / 20), np.full(30, 0.05 / 30)])
    assert condensed_directions(u, amplitude) == 2
    assert condensed_directions(u, amplitude, signed=False) == 1
    assert condensed_directions(u, amplitude, share=1.0) > 2


def test_condensed_directions_seeds_clusters_by_amplitude():
    """Row 1 lies within the threshold of rows 0 and 2, which are not within it of each other:
    seeded by the strongest row 1, one cluster holds everything; seeded by index, two."""
    angles = np.array([0.0, 0.25, 0.5])
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert condensed_directions(u, np.array([1.0, 10.0, 1.0]), threshold=0.95, share=0.95) == 1
    assert condensed_directions(u, np.array([10.0, 1.0, 1.0]), threshold=0.95, share=0.95) == 2


def test_condensed_directions_counts_by_share():
    u = np.eye(3)
    amplitude = np.array([0.2, 0.5, 0.3])
    assert [condensed_directions(u, amplitude, share=s) for s in (0.5, 0.8, 0.81, 1.0)] == [1, 2, 3, 3]
    assert condensed_directions(u, np.zeros(3)) == 0


def test_big_clusters_default_size_is_max_2_and_5_percent():
    m = 60  # default min size = max(2, 3) = 3
    rng = np.random.default_rng(4)
    u = np.stack([_unit(rng, 40) for _ in range(m)])
    for group, size in ((0, 3), (10, 2), (20, 5)):
        u[group : group + size] = u[group]
    D = cosine_matrix(u)
    assert big_clusters(D) == 2
    assert big_clusters(D, min_size=2) == 3
    assert big_clusters(cosine_matrix(u[:20]), min_size=None) == 2  # m = 20: size >= 2


def test_top_singular_energy():
    rng = np.random.default_rng(5)
    v = rng.standard_normal(4)
    rank_one = np.outer(rng.standard_normal(7), v)
    assert top_singular_energy(rank_one) == pytest.approx(1.0)
    assert top_singular_energy(np.eye(4)) == pytest.approx(0.25)
    # row normalization: a long row does not dominate
    assert top_singular_energy(np.array([[100.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.5)
    assert math.isnan(top_singular_energy(np.zeros((3, 2))))


def test_relative_distance_hand_values():
    theta0 = np.array([3.0, 4.0])
    assert relative_distance(theta0, theta0) == 0.0
    assert relative_distance(np.array([3.0, 5.0]), theta0) == pytest.approx(0.2)
    assert relative_distance(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])) == pytest.approx(1.0)
    assert relative_distance(np.ones(2), np.zeros(2)) == math.inf
    with pytest.raises(ValueError, match="entries"):
        relative_distance(np.ones(3), np.ones(2))


def test_top_orientation_share_and_pair_fraction():
    angle = np.array([0.01, 0.02, 1.01, 2.01, 3.01, -3.0])
    amplitude = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 4.0])
    # bins: {0.01, 0.02}: 2, {1.01}: 2, {-3.0}: 4, the others 1 each; top 4 = 4 + 2 + 2 + 1
    assert top_orientation_share(angle, amplitude) == pytest.approx(9 / 10)
    assert top_orientation_share(angle, amplitude, bins=1) == pytest.approx(4 / 10)
    assert top_orientation_share(np.array([math.pi, -math.pi]), np.ones(2), bins=1) == pytest.approx(0.5)
    D = np.array([[1.0, 0.99, -0.97], [0.99, 1.0, 0.1], [-0.97, 0.1, 1.0]])
    assert pair_fraction(D, 0.95) == pytest.approx(2 / 3)
    assert math.isnan(pair_fraction(np.ones((1, 1))))


# ------------------------------------------------------------------------------ probes
def _task() -> Task:
    x = torch.linspace(-1, 1, 5)[:, None]
    return Task(x_train=x, y_train=x**2)


def _mlp_and_copy(width: int = 12):
    mlp = build_model(MLPSpec(width=width, activation="relu"), 1, 1, torch.Generator().manual_seed(0))
    seq = nn.Sequential(nn.Linear(1, width), nn.ReLU(), nn.Linear(width, 1))
    names = {"layers.0.weight": "0.weight", "layers.0.bias": "0.bias",
             "layers.1.weight": "2.weight", "layers.1.bias": "2.bias"}
    seq.load_state_dict({names[key]: value for key, value in mlp.state_dict().items()})
    return mlp, seq


def _perturb(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_condensation_probe_same_on_mlp_and_sequential():
    mlp, seq = _mlp_and_copy()
    x = _task().x_train
    torch.testing.assert_close(mlp(x), seq(x))
    refs = [{k: v.clone() for k, v in m.state_dict().items()} for m in (mlp, seq)]
    for model in (mlp, seq):
        _perturb(model, 7)
    outs = [
        run_probe("condensation", m, _task(), reference=ref, matrix=True) for m, ref in zip((mlp, seq), refs)
    ]
    assert set(outs[0]) == set(outs[1]) == {
        "rd_w", "rd_a", "n_directions", "big_clusters", "singletons", "top_singular_energy", "pair_fraction",
        "orientation_share", "angle", "amplitude", "cosine",
    }
    for key in outs[0]:
        np.testing.assert_allclose(outs[0][key], outs[1][key], rtol=1e-6, err_msg=key)
    assert outs[0]["rd_w"] > 0 and outs[0]["rd_a"] > 0
    assert isinstance(outs[0]["rd_w"], float) and outs[0]["cosine"].shape == (12, 12)


def test_condensation_probe_rd_hand_value_and_zero_at_reference():
    mlp, _ = _mlp_and_copy()
    ref = {k: v.clone() for k, v in mlp.state_dict().items()}
    at_ref = run_probe("condensation", mlp, _task(), reference=ref)
    assert at_ref["rd_w"] == 0.0 and at_ref["rd_a"] == 0.0
    with torch.no_grad():
        mlp.layers[0].bias[0] += 0.5
        mlp.layers[1].weight[0, 3] -= 0.25
    theta0 = torch.cat([ref["layers.0.weight"].ravel(), ref["layers.0.bias"]])
    out = run_probe("condensation", mlp, _task(), reference=ref)
    assert out["rd_w"] == pytest.approx(0.5 / theta0.norm().item(), rel=1e-6)
    assert out["rd_a"] == pytest.approx(0.25 / ref["layers.1.weight"].norm().item(), rel=1e-6)
    assert math.isnan(run_probe("condensation", mlp, _task())["rd_w"])


def test_condensation_probe_on_a_condensed_net():
    """Neurons at two orientations (a line: u and -u) carry all the amplitude."""
    seq = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))
    scales = torch.tensor([1.0, -1.0, 2.0, -2.0, 0.5, -0.5, -1.5, 1.5])
    with torch.no_grad():
        seq[0].weight.copy_(scales[:, None] * 0.6)
        seq[0].bias.copy_(scales * 0.8)
        seq[2].weight.fill_(0.5)
    out = run_probe("condensation", seq, _task(), matrix=True)
    assert out["n_directions"] == 2 and out["big_clusters"] == 2 and out["singletons"] == 0
    assert out["top_singular_energy"] == pytest.approx(1.0)
    assert out["pair_fraction"] == 1.0 and out["orientation_share"] == pytest.approx(1.0)
    theta = math.atan2(0.8, 0.6)
    np.testing.assert_allclose(out["angle"], np.where(scales > 0, theta, theta - math.pi), rtol=1e-6)
    np.testing.assert_allclose(out["amplitude"], 0.5 * scales.abs(), rtol=1e-6)
    # display order (rows interleave the two orientations) makes two blocks of +1
    block = np.kron(np.array([[1, -1], [-1, 1]]), np.ones((4, 4)))
    np.testing.assert_allclose(out["cosine"], block, atol=1e-6)


def test_deeper_user_model_first_layer_only_and_relative_distance():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    out = run_probe("condensation", model, _task(), reference=ref)
    assert set(out) == {"rd_w", "n_directions", "big_clusters", "singletons", "top_singular_energy", "pair_fraction"}
    assert out["rd_w"] == 0.0
    rd = run_probe("relative_distance", model, _task(), reference=ref)
    assert rd == {"all": 0.0, "first": 0.0, "last": 0.0}
    with torch.no_grad():
        model[4].bias += 3.0
    rd = run_probe("relative_distance", model, _task(), reference=ref)
    last0 = torch.cat([ref["4.weight"].ravel(), ref["4.bias"]]).norm().item()
    all0 = torch.cat([v.ravel() for v in ref.values()]).norm().item()
    assert rd["first"] == 0.0
    assert rd["last"] == pytest.approx(3.0 / last0, rel=1e-6)
    assert rd["all"] == pytest.approx(3.0 / all0, rel=1e-6)


def test_relative_distance_probe_on_mlp_and_errors():
    mlp, _ = _mlp_and_copy()
    ref = {k: v.clone() for k, v in mlp.state_dict().items()}
    with torch.no_grad():
        mlp.layers[0].weight.mul_(1.5)
    rd = run_probe("relative_distance", mlp, _task(), reference=ref)
    w0 = ref["layers.0.weight"].norm().item()
    first0 = torch.cat([ref["layers.0.weight"].ravel(), ref["layers.0.bias"]]).norm().item()
    assert rd["first"] == pytest.approx(0.5 * w0 / first0, rel=1e-6) and rd["last"] == 0.0
    assert needs_reference("relative_distance") and needs_reference("condensation")
    with pytest.raises(ValueError, match="reference"):
        run_probe("relative_distance", mlp, _task())
    with pytest.raises(KeyError, match="layers.1.bias"):
        partial = {k: v for k, v in ref.items() if k != "layers.1.bias"}
        run_probe("relative_distance", mlp, _task(), reference=partial)
    with pytest.raises(ValueError, match="no parameters"):
        run_probe("relative_distance", Fn(lambda x: x), _task(), reference={})
