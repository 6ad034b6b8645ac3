"""ntk-convergence: the empirical NTK approaches the analytic kernel and freezes with width."""

import pytest

from phenolab.execution import run_experiment
from phenolab.experiments import get_experiment
from phenolab.store import Store


def test_plan_has_zero_step_init_runs_and_trained_runs():
    e = get_experiment("ntk-convergence")
    cfg = e.resolve("quick")
    plan = e.plan(cfg)
    init = [s for label, s in plan if label.startswith("init")]
    trained = [s for label, s in plan if label.startswith("train")]
    assert init and all(s.train.steps == 0 and s.data.sampling == "circle" for s in init)
    assert trained and all(s.train.steps == 200 and s.data.sampling == "gaussian" for s in trained)
    assert {s.model.hidden_widths[0] for s in init} == set(cfg.init_widths)


@pytest.mark.slow
def test_ntk_convergence_quick_passes(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        outcome = run_experiment("ntk-convergence", store=st, preset="quick")
    assert outcome.passed, outcome.verdict["reason"]
    assert outcome.summary["error_at_largest"] < 0.08
    assert -0.7 <= outcome.summary["error_slope"] <= -0.3
