"""Phase diagram and condensation: theory helpers, and the quick presets pass their verdicts."""

import math

import pytest

from phenolab.execution import run_experiment
from phenolab.experiments.analysis import fit_slope
from phenolab.experiments.phase_diagram import boundary_distance, classify, init_stds, theory_regime
from phenolab.store import Store


def test_theory_regimes_follow_the_theorems():
    assert theory_regime(0.5, 0.0) == "linear"  # gamma < 1
    assert theory_regime(1.5, 1.0) == "linear"  # gamma' > gamma - 1
    assert theory_regime(1.5, 0.0) == "condensed"
    assert theory_regime(1.0, -1.0) == "critical" and theory_regime(2.0, 1.0) == "critical"


def test_boundary_distance_against_hand_values():
    assert boundary_distance(0.5, 0.0) == pytest.approx(0.5)
    assert boundary_distance(1.25, 0.0) == pytest.approx(0.25 / math.sqrt(2))  # nearer the diagonal ray
    assert boundary_distance(1.5, -0.5) == pytest.approx(0.5)  # nearer the vertical ray
    assert boundary_distance(0.0, 1.0) == pytest.approx(math.sqrt(2))  # beyond both rays: to their corner
    assert boundary_distance(2.0, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_init_stds_give_the_coordinates_back():
    beta_2, beta_1 = init_stds(1.5, -0.5, 400)
    assert -math.log(beta_1 * beta_2) / math.log(400) == pytest.approx(1.5)
    assert -math.log(beta_1 / beta_2) / math.log(400) == pytest.approx(-0.5)


def test_slope_and_classification():
    widths = [100, 400, 1600]
    assert fit_slope(widths, [w ** 0.3 for w in widths]) == pytest.approx(0.3)
    assert [classify(s, -0.15, 0.08) for s in (-0.5, 0.0, 0.5)] == ["linear", "critical", "condensed"]


@pytest.fixture()
def store(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        yield st


@pytest.mark.slow
def test_phase_diagram_quick_classifies_the_spec_points(store):
    outcome = run_experiment("phase-diagram", store=store, preset="quick")
    assert outcome.passed, outcome.verdict["reason"]
    slopes = {(p["gamma"], p["gamma_prime"]): p["slope"] for p in outcome.summary["points"]}
    assert slopes[(0.5, 0.0)] < -0.2 and slopes[(2.0, 0.0)] > 0.25 and abs(slopes[(1.0, 0.0)]) < 0.15
    # the heuristic of docs/specs/condensation.md: at gamma' = 0 and gamma > 1 the slope is near (gamma - 1) / 2
    assert slopes[(2.0, 0.0)] == pytest.approx(0.5, abs=0.1)


@pytest.mark.slow
def test_condensation_quick_small_init_condenses_large_does_not(store):
    outcome = run_experiment("condensation", store=store, preset="quick")
    assert outcome.passed, outcome.verdict["reason"]
    assert outcome.summary["small_median"] >= 0.9 > outcome.summary["large_median"]


@pytest.mark.slow
def test_initial_condensation_quick_respects_the_multiplicity_bound(store):
    outcome = run_experiment("initial-condensation", store=store, preset="quick")
    assert outcome.passed, outcome.verdict["reason"]
    s = outcome.summary
    assert s["tanh_big_median"] <= 2 < s["compare_big_median"] <= 5
