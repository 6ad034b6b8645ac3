"""Local linear recovery (arXiv:2406.18035; docs/specs/recovery.md, LLR-1 to LLR-4): the quick preset passes with the
closed-form ranks, the LLR indicator steps at n = r, and bad configs are refused."""

import math

import numpy as np
import pytest

from phenolab.config import ConfigError
from phenolab.execution import run_experiment
from phenolab.experiments import get_experiment
from phenolab.experiments import local_linear_recovery as llr
from phenolab.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_preset_passes_with_the_closed_form_ranks(tmp_path):
    with Store(tmp_path / "s") as store:
        outcome = run_experiment(llr.NAME, store=store, preset="quick")
        assert outcome.passed, outcome.verdict["reason"]
        s = outcome.summary
        # two-layer tanh: k (d + 1) at every width; aligned neurons d + 1
        assert s["two_layer_ranks"] == {str(k): {"8": 4 * k, "4": 4 * k, "16": 4 * k} for k in (1, 2, 3)}
        assert s["per_seed"]["0"]["aligned_rank"] == 4 and s["two_layer_max_deviation"] == 0
        # deep (6, 6): r = M' for the narrow targets, far below M = 60; a generic point 60
        assert s["deep_ranks"] == {"[1, 1]": 5, "[2, 1]": 9, "[2, 2]": 12, "[3, 2]": 17}
        assert s["generic_rank_min"] == s["wide_parameters"] == 60
        # LLR: probability exactly 0 below r and 1 from r on, for every target
        llr_curves = s["per_seed"]["0"]["llr"]
        ranks = s["per_seed"]["0"]["ranks"]
        for key, curve in llr_curves.items():
            r = ranks[key]
            assert [curve[str(n)] for n in range(1, r + 3)] == [0.0] * (r - 1) + [1.0] * 3, key
        assert s["llr_below"] == s["llr_below_deep"] == 0.0 and s["llr_above"] == s["llr_above_deep"] == 1.0
        # the ranks stand out: at least 10 decades between sigma_r and sigma_{r+1}, and every kept
        # singular value of a sample Jacobian clear of rtol = 1e-8
        assert s["min_log10_gap"] > 10 and s["sample_log10_kept_min"] > -7
        checks = {c["name"]: c for c in outcome.verdict["checks"]}
        assert len(checks) == 13 and all(c["passed"] for c in checks.values())
        runs = store.list_runs(kind="measure")
        assert len(runs) == 15 and all(r["status"] == "done" for r in runs)
        figures = {a["name"] for a in store.artifacts(outcome.run_id) if a["kind"] == "figure"}
        assert figures == {"LLR probability vs n (two-layer)", "LLR probability vs n (deep)",
                           "deep ranks vs narrow target"}


def test_rank_and_llr_of_one_target_directly():
    out = llr.rank_and_llr(llr.RankParams(d=3, widths=[4], point="narrow", narrow=[2], seed=5,
                                             population=500, draws=6, extra=1, rtol=1e-8))
    assert out["rank"] == 8 and out["parameters"] == 16
    assert out["sizes"].tolist() == list(range(1, 10))
    # below r the sample Jacobian has full row rank n; from r on it has rank r
    np.testing.assert_array_equal(out["sample_ranks"], np.minimum(out["sizes"], 8)[:, None].repeat(6, 1))
    assert out["llr"].tolist() == [0.0] * 7 + [1.0, 1.0]
    assert out["log10_gap"] > 10 and out["log10_dropped"] < -14
    generic = llr.rank_and_llr(llr.RankParams(d=3, widths=[6, 6], point="generic", seed=0, population=700,
                                                 draws=0, rtol=1e-8))
    assert generic["rank"] == 60 and math.isinf(generic["log10_gap"]) and "llr" not in generic


def test_parameter_points_are_the_narrow_functions():
    import torch

    x = torch.randn(50, 3, dtype=torch.float64)
    narrow = llr.tanh_net(3, [2, 1], 0, llr.narrow_layers(3, [2, 1], 4))
    wide = llr.build_point(llr.PointParams(d=3, widths=[6, 6], point="narrow", narrow=[2, 1], seed=4))
    torch.testing.assert_close(wide(x), narrow(x))
    aligned = llr.build_point(llr.PointParams(d=3, widths=[8], point="aligned", seed=4))
    one = llr.tanh_net(3, [1], 0, llr.narrow_layers(3, [1], 4))
    torch.testing.assert_close(aligned(x), one(x))
    assert llr.narrow_parameter_count(3, [3, 2]) == 17 and llr.narrow_parameter_count(3, [6, 6]) == 60


@pytest.mark.parametrize(("overrides", "field"), [
    ({"d": -1}, "d"),
    ({"ks": [1, 5]}, "ks"),
    ({"narrow": [[1, 1], [7, 1]]}, r"narrow\[1\]"),
    ({"narrow": [[1]]}, r"narrow\[0\]"),
    ({"population": 100}, "population"),
    ({"rtol": 2.0}, "rtol"),
    ({"check": {"deep_fraction_max": 0}}, "check.deep_fraction_max"),
    ({"draw": 3}, "draw"),
])
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        get_experiment(llr.NAME).resolve("quick", overrides)


def test_full_preset_resolves():
    cfg = get_experiment(llr.NAME).resolve("full")
    assert cfg.population == 8000 and cfg.seeds == [0, 1, 2] and cfg.draws == 20
