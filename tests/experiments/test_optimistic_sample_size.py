"""Optimistic sample size (arXiv:2307.08921, 2211.11623; docs/specs/recovery.md): the quick
preset passes with the protocol's ranks and recovery numbers, the toy's fast GD matches the batched trainer,
and bad configs are refused."""

import numpy as np
import pytest
import torch

from phenolab.config import ConfigError
from phenolab.execution import run_experiment
from phenolab.experiments import get_experiment
from phenolab.experiments import optimistic_sample_size as oss
from phenolab.store import Store
from phenolab.train.batched import gradient_descent, pad_samples
from phenolab.train.numpy_gd import coefficient_product_gd, product_losses

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_preset_passes_with_the_spec_numbers(tmp_path):
    with Store(tmp_path / "s") as store:
        outcome = run_experiment(oss.NAME, store=store, preset="quick")
        assert outcome.passed, outcome.verdict["reason"]
        s = outcome.summary
        # (a) the toy: linear never at n = 1, 2; depth 2 from n = 2 (pilot 42 %); the linear
        # model's GD limit always at n = 3; model ranks 3 and 2
        toy = s["toy"]
        assert toy["1"]["success"]["1"] == toy["1"]["success"]["2"] == 0.0
        assert toy["2"]["success"]["1"] == toy["3"]["success"]["1"] == 0.0
        assert 0.25 <= toy["2"]["success"]["2"] <= 0.7
        assert toy["1"]["limit_success"] == {"1": 0.0, "2": 0.0, "3": 1.0}
        assert toy["1"]["success"]["3"] >= 0.8  # 30k GD steps: not yet converged on every sample
        assert s["toy_ranks"] == {"1": 3, "2": 2, "3": 2}
        assert s["toy_first_success"]["depth 2"] == 2 and s["toy_first_success"]["linear (GD limit)"] == 3
        # (b) free in width: rank 4 at every width; nothing at n <= d; half the seeds far below M
        assert s["width_ranks"] == {"1": 4, "4": 4, "16": 4}
        assert s["below"] == 0.0
        assert s["overparam"]["4"] >= 0.5 and s["overparam"]["16"] >= 0.5
        assert s["rates"]["4"]["12"] >= 0.8 and s["rates"]["16"]["12"] >= 0.8
        # (c) connection cost, (d) matrix factorization
        assert s["connection_ranks"] == {"fully_connected": 7, "s_connected": 3, "cnn": 3, "fc_of_conv": 35}
        assert s["conv_fc_max_difference"] < 1e-12
        assert s["mf_ranks"] == {"1": 7, "2": 12, "3": 15}
        figures = {a["name"] for a in store.artifacts(outcome.run_id) if a["kind"] == "figure"}
        assert figures == {"recovery rate vs sample size, by width", "toy: success rate vs sample size"}


@pytest.mark.parametrize(("depth", "std"), [(1, 1e-2), (2, 0.3), (3, 0.5)])
def test_toy_gradient_descent_matches_the_batched_trainer(depth, std):
    """The hand-written numpy GD of the toy takes the same steps as `batched.gradient_descent` on
    `CoefficientProduct` (autograd through vmap)."""
    seeds, sizes = [0, 1, 2], [1, 2, 3]
    models = [oss.CoefficientProduct(2, depth, std, oss.generator(s, f"toy init depth={depth}")) for _ in sizes
              for s in seeds]
    xs = [torch.as_tensor(oss.toy_sample(s, n)) for n in sizes for s in seeds]
    ys = [1 + x[:, :1] for x in xs]
    x, y, mask = pad_samples(xs, ys)
    start = {"factors": torch.stack([m.factors.detach() for m in models])}
    fit = gradient_descent(models[0], start, x, y, mask, lr=0.1, steps=200)
    phi = torch.cat([torch.ones(*x.shape[:2], 1, dtype=x.dtype), x], -1).numpy()
    weight = (mask / mask.sum(1, keepdim=True)).numpy()
    out = coefficient_product_gd(start["factors"].numpy(), phi, y[..., 0].numpy(), weight, lr=0.1, steps=200,
                                 record_steps=range(0, 201, 100))
    u = out.u
    assert out.steps.tolist() == [0, 100, 200] and out.loss.shape == (len(models), 3)
    np.testing.assert_allclose(out.loss[:, 0], fit.history[0], rtol=1e-6)  # both (1 / 2 n_b) sum e^2 (float32 weight)
    np.testing.assert_array_equal(out.loss[:, -1], product_losses(u, phi, y[..., 0].numpy(), weight))
    np.testing.assert_allclose(u, fit.params["factors"].numpy(), rtol=1e-7, atol=1e-9)  # rounding over 200 steps
    np.testing.assert_array_equal(oss.toy_init(2, depth, std), models[2].factors.detach().numpy())


def test_toy_linear_limit_is_the_least_squares_solution_nearest_the_start():
    out = oss.toy_trials(oss.ToyParams(depth=1, init_std=0.5, coefficients=[1.0, 1.0, 0.0], sizes=[1, 2, 3, 5],
                                       seeds=[0, 1], lr=0.1, steps=0, success=1e-2))
    assert out["limit_success"].tolist() == [[False, False], [False, False], [True, True], [True, True]]
    # n = 2: the limit interpolates the sample but is not c*
    x = oss.toy_sample(1, 2)
    phi = np.c_[np.ones(2), x]
    c0 = oss.toy_init(1, 1, 0.5)[0]
    limit = c0 + np.linalg.pinv(phi) @ (1 + x[:, 0] - phi @ c0)
    assert np.linalg.norm(limit - [1, 1, 0]) == pytest.approx(out["limit_distance"][1, 1])
    np.testing.assert_allclose(phi @ limit, 1 + x[:, 0])
    assert out["success"].sum() == 0  # no steps: still at the start


@pytest.mark.parametrize(("overrides", "field"), [
    ({"d": -1}, "d"),
    ({"sizes": [2, 8]}, "sizes"),
    ({"toy_models": [{"depth": 2, "init_std": 1e-6}]}, "toy_models"),
    ({"toy_models": [{"depth": 1, "init_std": -1.0}, {"depth": 2, "init_std": 1e-6}]}, r"toy_models\.0\.init_std"),
    ({"toy_sizes": [1, 3]}, "toy_sizes"),
    ({"toy_coefficients": [1.0, 1.0, 1.0]}, "toy_coefficients"),
    ({"widths": [1, 2]}, "widths"),
    ({"connection_s": 6}, "connection_s"),
    ({"mf_ranks": [5]}, "mf_ranks"),
    ({"check": {"tau": 0}}, "check.tau"),
])
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        get_experiment(oss.NAME).resolve("quick", overrides)


def test_full_preset_follows_the_spec_sizes():
    cfg = get_experiment(oss.NAME).resolve("full")
    assert cfg.steps == 40000 and cfg.toy_steps == 30000 and cfg.toy_seeds == 50 and cfg.widths == [1, 4, 16]
    assert cfg.unbalanced_widths == [4, 16] and cfg.sizes == [2, 3, 4, 6, 8, 12, 16]
