"""Recovery trials: teacher, nested samples, the B1 branch start, scores."""

import numpy as np
import pytest
import torch

from phenolab.experiments.recovery import (
    BranchParams,
    TrialParams,
    active_neurons,
    branch_starts,
    imbalance,
    neuron_target,
    recovery_rate,
    recovery_trials,
    sample_inputs,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = dict(d=3, width=4, activation="tanh", a_star=1.0, w_norm=1.0, teacher_seed=0, seeds=[0, 1, 2],
            lr=0.2, n_test=500)


def test_target_has_the_asked_norm_and_samples_are_nested():
    a, w = neuron_target(5, 2.0, 0.5, seed=3)
    assert a == 2.0 and float(w.norm()) == pytest.approx(0.5)
    assert torch.equal(sample_inputs(1, 4, 3), sample_inputs(1, 9, 3)[:4])


def test_a_start_on_the_branch_without_noise_is_exact():
    """eps = 0: neuron 0 is the target and the others have a = 0, so f = f* everywhere."""
    out = branch_starts(BranchParams(**BASE, sizes=[2, 8], eps=0.0, steps=0, polish=0))
    assert out["e_test"].shape == (2, 3) and np.all(out["e_test"] < 1e-28)
    assert np.all(out["train_loss"] < 1e-28)


def test_polished_branch_starts_interpolate_and_separate_at_the_branch_rank():
    out = branch_starts(BranchParams(**BASE, sizes=[4, 13], eps=1e-2, steps=200, polish=30))
    assert np.all(out["train_loss"] < 1e-24)  # interpolation at every n
    assert np.all(out["e_test"][0] > 1e-9)  # n = 4 < d + m: a nearby non-generalizing minimum
    assert np.all(out["e_test"][1] < 1e-20)  # n = 13 >= d + m: in Q*


def test_scale_only_changes_the_size_of_the_initial_draw():
    small = recovery_trials(TrialParams(**BASE, sizes=[3], sigma0=1e-4, steps=0))
    tiny = recovery_trials(TrialParams(**BASE, sizes=[3], sigma0=1e-6, steps=0))
    assert np.allclose(small["imbalance_init"], 1e4 * tiny["imbalance_init"], rtol=1e-10)


def test_imbalance_active_neurons_and_rate():
    params = {"layers.0.weight": torch.tensor([[[3.0, 4.0], [0.0, 0.0]]]),
              "layers.1.weight": torch.tensor([[[1.0, 2.0]]])}
    assert imbalance(params).tolist() == [[1 - 25, 4 - 0]]
    assert active_neurons(params).tolist() == [1]
    assert recovery_rate(np.array([[1e-4, 1e-2, np.nan, 0.0]]), 1e-3).tolist() == [0.5]
