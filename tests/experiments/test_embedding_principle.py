"""Embedding principle (docs/specs/embedding-principle.md): the helpers on hand-made neurons, config rules, and the
quick preset end to end against the pilot's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phenolab.config import ConfigError
from phenolab.execution.orchestrator import run_experiment
from phenolab.experiments import embedding_principle as ep  # importing registers the experiment
from phenolab.experiments.base import get_experiment
from phenolab.probes.parameters import loss_and_gradient
from phenolab.store import Store
from phenolab.train.numpy_gd import tanh_two_layer_loss_grad

pytestmark = pytest.mark.usefixtures("one_thread")


def test_count_directions_groups_sign_aligned_big_neurons():
    u, v = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    w = np.stack([2 * u, -0.5 * u, 1.01 * u + [0, 0.05], v, 1e-4 * np.array([0.0, 1.0])])
    a = np.array([1.0, -3.0, 0.5, 1e-3, 1.0])
    # big: |a| ||w|| > 1 % of max = 2.0: neurons 0, 1 (odd: -u is u), 2 (|cos| = 0.9988); 3 and 4 are small
    assert ep.count_directions(w, a, 0.01, 0.99) == 1
    assert ep.count_directions(w, a, 0.01, 0.999) == 2  # neuron 2 is now its own direction
    assert ep.count_directions(w, a, 1e-6, 0.99) == 3  # neuron 3 (size 1e-3) counts, neuron 4 (1e-4) does not
    assert ep.count_directions(np.zeros((2, 2)), np.ones(2), 0.01, 0.99) == 0


def test_merge_condensed_keeps_the_linear_part():
    u = np.array([0.6, -0.8])
    w = np.stack([2 * u, -1.0 * u, 3 * u, [0.0, 1e-9]])
    a = np.array([2.0, -1.0, 0.5, 1e-12])
    theta = ep.merge_condensed(w, a, 0.01)  # the last neuron is small and dropped
    # sign-aligned: (-u, -1) -> (u, 1); a = 2 + 1 + 0.5, w = (2*2 + 1*1 + 0.5*3) u / 3.5
    np.testing.assert_allclose(theta, [*(6.5 / 3.5 * u), 3.5])
    assert theta[2] * theta[:2] == pytest.approx((a[:3, None] * w[:3]).sum(0))  # sum a_k w_k: the linear part


def test_numpy_gradient_matches_autograd():
    x, y = ep.make_data(30, 0)
    net = ep.tanh_net(5, 0.7, seed=3)
    w, _, a = net.neurons()
    loss, gw, ga = tanh_two_layer_loss_grad(w.detach().numpy(), a.detach().numpy()[:, 0], x.numpy(), y.numpy()[:, 0])
    ref_loss, ref = loss_and_gradient(net, x, y)  # flat order: layers.0.weight (5, 2), layers.1.weight (1, 5)
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    np.testing.assert_allclose(np.concatenate([gw.reshape(-1), ga]), ref, rtol=1e-11, atol=1e-15)


def test_sign_distance():
    assert ep.sign_distance([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]) == 0.0
    assert ep.sign_distance([1.0, 2.0, 3.0], [1.0, 2.0, 2.0]) == pytest.approx(1.0)


def test_bad_config_names_the_field():
    exp = get_experiment("embedding-principle")
    with pytest.raises(ConfigError, match="widths"):
        exp.resolve("quick", {"widths": [-50]})
    with pytest.raises(ConfigError, match="deltas"):
        exp.resolve("quick", {"deltas": [0.5, 1.0]})
    with pytest.raises(ConfigError, match="deltas"):
        exp.resolve("quick", {"deltas": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="escape_fraction"):
        exp.resolve("quick", {"escape_fraction": 1.5})
    with pytest.raises(ConfigError, match="check.saddle_rtol"):
        exp.resolve("quick", {"check": {"saddle_rtol": -0.1}})
    assert exp.resolve("full").widths == [50, 500]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    store = Store(tmp_path_factory.mktemp("ep") / "s")
    try:
        yield store, run_experiment("embedding-principle", store=store, preset="quick")
    finally:
        torch.set_num_threads(threads)


def test_quick_preset_passes_with_the_spec_numbers(quick):
    store, out = quick
    assert out.passed, out.verdict["reason"]
    s = out.summary
    # check EMB-1: the pilot's narrow critical point
    assert s["narrow_loss"] == pytest.approx(3.1345e-2, rel=1e-4)
    np.testing.assert_allclose(s["narrow_eigenvalues"], [0.0113, 0.873, 3.26], rtol=5e-3)
    assert s["narrow_grad_norm"] < 1e-10 and s["narrow_inertia"] == [0, 0, 3]
    # check 2
    assert s["embedded_grad_norm_max"] < 1e-10 and s["embedded_output_diff_max"] < 1e-12
    # check 3: predicted vs measured per delta (spec table)
    for d, (pred, meas) in {"0.5": (-0.1445, -0.1445), "0.25": (-0.0867, -0.0878), "-0.5": (-0.00214, -0.00224),
                            "1.5": (-0.00214, -0.00224)}.items():
        assert s["saddle"][d]["predicted"] == pytest.approx(pred, rel=1e-2)
        assert s["saddle"][d]["measured"] == pytest.approx(meas, rel=1e-2)
    assert s["saddle"]["0.5"]["rel_err"] < 1e-9  # delta = 1/2: the split direction is an eigenvector
    np.testing.assert_allclose(sorted(s["he_eigenvalues"]), [-0.289, 0.0071], rtol=1e-2)
    # checks 4, 5
    assert all(v == [1, 1, 4] for v in s["embedded_inertia"].values())
    assert s["null_g_norm"] == pytest.approx(0.0128, rel=1e-2) and s["null_new_zeros"] == 1
    assert s["fd_eigenvalue_error_max"] < 1e-6  # the protocol's finite-difference Hessian agrees
    # check 6: one direction at the first plateau, 0.036-0.037, reduction reaches theta*
    assert len(s["dynamics"]) == 4
    for run in s["dynamics"]:
        assert run["plateau_directions"] == 1
        assert 0.035 < run["plateau_loss"] < 0.038
        assert run["polished_loss"] == pytest.approx(s["narrow_loss"], rel=1e-9)
        assert 0.008 < run["second_loss"] < 0.011 and run["second_directions"] >= 2
    assert s["reached"] == "4/4"
    # the stored results: the Hessian spectra at the embedded points, the per-step curves
    static = store.load_artifact(s["runs"]["static"], "result")
    assert static["split_eigenvalues"].shape == (4, 6) and static["null_eigenvalues"].shape == (6,)
    dyn = store.load_artifact(s["runs"]["dynamics width=50 seed=0"], "result")
    assert dyn["loss"].shape == dyn["grad_norm"].shape == (6001,)
    assert dyn["directions"].shape == (601,)
    pngs = sorted(p.name.rsplit("-", 1)[0] for p in store.run_dir(out.run_id).glob("*.png"))
    assert pngs == ["Hessian_eigenvalues_narrow_vs_embedded", "directions_of_the_big_neurons", "gradient_norm",
                    "training_loss"]
    names = {c["name"].split(":")[0] for c in out.verdict["checks"]}
    assert {"1. narrow critical point", "2. embedded points", "4. irreversibility", "6. first plateau"} <= names


def test_tighter_threshold_fails_and_reuses_the_measurements(quick):
    store, first = quick
    out = run_experiment("embedding-principle", store=store, preset="quick",
                         overrides={"check": {"plateau_excess_max": 0.1}})
    assert not out.passed
    assert "first plateau: |L_plateau - L*| / L*" in out.verdict["reason"]
    assert out.summary["runs"] == first.summary["runs"]  # measurements reused by config hash
