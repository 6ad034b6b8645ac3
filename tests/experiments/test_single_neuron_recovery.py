"""single-neuron-recovery: the quick preset's verdict and numbers; bad configs are named."""

import pytest

from phenolab.config import ConfigError
from phenolab.execution import run_experiment
from phenolab.experiments import get_experiment
from phenolab.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_preset_passes_with_the_spec_numbers(tmp_path):
    with Store(tmp_path / "s") as store:
        outcome = run_experiment("single-neuron-recovery", store=store, preset="quick")
        children = store.children(outcome.run_id)
    assert outcome.passed, outcome.verdict["reason"]
    s = outcome.summary
    assert s["below"] == 0.0 and s["width1_below"] == 0.0
    assert s["at_optimistic"] <= 0.2 and s["small_minus_large"] >= 0.3
    assert s["rates"]["small"]["12"] >= 0.8 > s["rates"]["large"]["8"]
    assert {c["kind"] for c in children} == {"measure"} and len(children) == 7


def test_bad_config_is_named():
    exp = get_experiment("single-neuron-recovery")
    with pytest.raises(ConfigError, match=r"^d: must be > 0, got -1"):
        exp.resolve("quick", {"d": -1})
    with pytest.raises(ConfigError, match="sizes must include"):
        exp.resolve("quick", {"sizes": [2, 3]})
    with pytest.raises(ConfigError, match="model"):
        exp.resolve("quick", {"model": {"width": 3}})
