"""matrix-completion: the quick preset's verdict and key numbers (arXiv:2405.13721; docs/specs/matrix-completion.md)."""

import pytest

import phenolab.experiments.matrix_completion  # noqa: F401  (registers the experiment)
from phenolab.config import ConfigError
from phenolab.execution.orchestrator import run_experiment
from phenolab.experiments import get_experiment
from phenolab.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")

# Known, reported failure (module docstring): one r = 1, n = 7 disconnected mask leaves a column
# unobserved where the Gaussian target is nearly zero, so it counts as a success (error 0.0049 < 1e-2),
# and it is the one success that is not linearly stable at the truth.
KNOWN_FAILURES = {"random masks, every n: success among disconnected masks (max)",
                  "random masks, n >= 2dr - r^2: linearly stable fraction among successes (min)"}


def test_quick_preset_key_numbers(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        outcome = run_experiment("matrix-completion", store=store, preset="quick")
    checks = {c["name"]: c for c in outcome.verdict["checks"]}
    failed = {name for name, c in checks.items() if not c["passed"]}
    assert failed == KNOWN_FAILURES, outcome.verdict["reason"]
    s = outcome.summary
    star, blocks, h = s["star"], s["blocks"], s["hierarchy"]
    assert star["max_error_small"] < 1e-6 and star["max_sigma_ratio_small"] < 1e-6
    assert star["min_error_large"] > 0.5
    assert star["unselected_pass_gamma_le_max"] == 1.0 and star["unselected_pass"] < 1.0
    lo, hi = blocks["norm_ratio_range"]
    assert 1.0 <= lo <= hi < 1.0001
    assert blocks["min_sigma_ratio"] > 0.1 and blocks["min_error"] > 0.3 and blocks["offdiag_spread"] > 0.5
    rows = s["random"]["1"]
    assert rows["6"]["success"] == 0.0 and rows["10"]["success_connected"] >= 0.8
    assert rows["7"]["success_disconnected"] == pytest.approx(1 / 31)
    assert h["rank_sequence"] == [1, 2, 3] and h["plateau_ranks"] == [1, 2]
    assert h["max_plateau_distance"] < 1e-3 and h["aligned_fraction"] == 1.0


def test_bad_config_is_named():
    with pytest.raises(ConfigError, match="random_std"):
        get_experiment("matrix-completion").resolve("quick", {"random_std": -1.0})
    with pytest.raises(ConfigError, match="size_offsets"):
        get_experiment("matrix-completion").resolve("quick", {"size_offsets": [0]})
