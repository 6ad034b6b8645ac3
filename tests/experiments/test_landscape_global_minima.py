"""landscape-global-minima: the quick preset's verdict and the sharp transition at d + m."""

import pytest

from phenolab.config import ConfigError
from phenolab.execution import run_experiment
from phenolab.experiments import get_experiment
from phenolab.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_preset_passes_and_separates_at_the_branch_rank(tmp_path):
    with Store(tmp_path / "s") as store:
        outcome = run_experiment("landscape-global-minima", store=store, preset="quick")
    assert outcome.passed, outcome.verdict["reason"]
    exact = outcome.summary["exact_fraction"]
    assert exact["4"] == exact["6"] == 0.0
    assert exact["7"] >= 0.9 and exact["16"] == 1.0
    lo, hi = outcome.summary["eps_ratio_range"]
    assert 3.5 < lo <= hi < 4.5  # O(eps^2) below separation


def test_bad_config_is_named():
    with pytest.raises(ConfigError, match=r"eps: must be > 0.0, got -0.1"):
        get_experiment("landscape-global-minima").resolve("quick", {"eps": -0.1})
