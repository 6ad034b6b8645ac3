"""Measurement runs (`Computation`): stored as ``measure`` children, reused by hash, failures kept."""

import numpy as np
import pytest

from phenolab.config import ConfigError, ExperimentSpec, PosInt, Spec
from phenolab.execution.measure import measure_items
from phenolab.execution.orchestrator import open_parent
from phenolab.experiments.base import Computation, Experiment, compute_safely, no_training, params_class, params_from
from phenolab.experiments.runner import Prepared
from phenolab.experiments.verdict import Verdict
from phenolab.store import Store

CALLS = []


def square(params):
    CALLS.append(params["x"])
    return {"value": float(params["x"]) ** 2, "grid": np.arange(params["x"], dtype=float)}


def broken(params):
    raise ArithmeticError(f"cannot measure {params['x']}")


def _prepared(computations):
    exp = Experiment(name="toy-measure", title="t", source="arXiv:0000.00000", claim="c.", config=ExperimentSpec,
                     presets={"quick": {}, "full": {}}, analyze=lambda c, r: {},
                     verdict=lambda c, s: Verdict("toy-measure", ()), figures=lambda c, r, s: {},
                     plan=no_training)
    return Prepared(exp, ExperimentSpec(experiment="toy-measure"), [], computations)


def test_results_are_stored_and_reused_by_hash(tmp_path):
    CALLS.clear()
    prepared = _prepared([Computation("x=3", square, {"x": 3}), Computation("x=4", square, {"x": 4})])
    with Store(tmp_path / "s") as store:
        parent, _ = open_parent(prepared, store)
        runs = measure_items(prepared, parent, store)
        assert [r.status for r in runs] == ["done", "done"] and CALLS == [3, 4]
        assert float(runs[0].result["value"]) == 9.0 and runs[1].result["grid"].tolist() == [0, 1, 2, 3]
        row = store.get_run(runs[0].run_id)
        assert row["kind"] == "measure" and row["parent_id"] == parent and row["summary"] == {"value": 9.0}
        assert row["config"]["params"] == {"x": 3} and row["config"]["compute"].endswith(":square")
        again = measure_items(prepared, parent, store)
        assert [r.run_id for r in again] == [r.run_id for r in runs] and CALLS == [3, 4]
        forced = measure_items(prepared, parent, store, force=True)
        assert forced[0].run_id != runs[0].run_id and CALLS == [3, 4, 3, 4]


def test_a_failing_computation_is_stored_failed_and_the_others_go_on(tmp_path):
    prepared = _prepared([Computation("bad", broken, {"x": 1}), Computation("ok", square, {"x": 2})])
    with Store(tmp_path / "s") as store:
        parent, _ = open_parent(prepared, store)
        bad, ok = measure_items(prepared, parent, store)
        assert bad.status == "failed" and "ArithmeticError: cannot measure 1" in bad.error
        assert store.get_run(bad.run_id)["status"] == "failed"
        assert ok.status == "done"


def test_params_decide_the_hash():
    a, b = Computation("a", square, {"x": 1}), Computation("b", square, {"x": 1})
    assert a.config_hash == b.config_hash != Computation("a", square, {"x": 2}).config_hash
    assert a.config_hash != Computation("a", broken, {"x": 1}).config_hash


def test_ctrl_c_marks_the_run_interrupted_and_propagates(tmp_path):
    def interrupt(params):
        raise KeyboardInterrupt
    prepared = _prepared([Computation("int", interrupt, {"x": 1})])
    with Store(tmp_path / "s") as store:
        parent, _ = open_parent(prepared, store)
        with pytest.raises(KeyboardInterrupt):
            measure_items(prepared, parent, store)
        child = store.children(parent)[0]
        assert child["status"] == "interrupted"


def test_a_local_pool_measures_the_same_numbers_as_this_process(tmp_path):
    """Computations go to the executor's workers (`run_calls`); results equal the inline ones."""
    from phenolab.execution.executors import make_executor
    from phenolab.experiments.recovery import recovery_trials

    params = dict(d=2, width=2, activation="tanh", a_star=1.0, w_norm=1.0, teacher_seed=0, seeds=[0, 1],
                  lr=0.2, n_test=50, sigma0=0.1, sizes=[2, 3], steps=20)
    comps = [Computation("a", recovery_trials, params), Computation("b", recovery_trials, {**params, "sigma0": 0.3}),
             Computation("bad", broken, {"x": 5})]
    pool = make_executor("local", jobs=2)
    with Store(tmp_path / "s") as store, pool:
        parent, _ = open_parent(_prepared(comps), store)
        local = measure_items(_prepared(comps), parent, store, executor=pool)
        inline = measure_items(_prepared(comps), parent, store, force=True)
        assert [r.status for r in local] == ["done", "done", "failed"]
        assert "ArithmeticError: cannot measure 5" in local[2].error
        for x, y in zip(local[:2], inline[:2]):
            assert np.array_equal(x.result["e_test"], y.result["e_test"])
    assert len(pool.stats) == 3 and all(st.worker.startswith("pid ") for st in pool.stats[:2])


class SquareParams(Spec):
    x: PosInt
    scale: float = 1.0
    tag: str | None = None


def typed_square(params: SquareParams):
    return {"value": params.scale * float(params.x) ** 2}


def test_typed_params_are_stored_as_json_and_hash_like_the_same_mapping():
    typed = Computation("x=3", typed_square, SquareParams(x=3, scale=2.0))
    assert typed.params_type is SquareParams
    assert typed.config["params"] == {"x": 3, "scale": 2.0, "tag": None}
    assert typed.config_hash == Computation("x=3", typed_square, {"x": 3, "scale": 2.0, "tag": None}).config_hash


def test_compute_safely_validates_a_mapping_into_the_annotated_params_class():
    assert params_class(typed_square) is SquareParams and params_class(square) is None
    assert compute_safely(typed_square, {"x": 3, "scale": 2.0}) == ("ok", {"value": 18.0})
    assert compute_safely(typed_square, SquareParams(x=2)) == ("ok", {"value": 4.0})
    status, error = compute_safely(typed_square, {"x": -1})
    assert status == "error" and "ValidationError" in error
    assert compute_safely(square, {"x": 2})[0] == "ok"  # an untyped compute gets the mapping


def test_typed_computations_are_measured_and_stored(tmp_path):
    prepared = _prepared([Computation("typed", typed_square, SquareParams(x=4, scale=0.5))])
    with Store(tmp_path / "s") as store:
        parent, _ = open_parent(prepared, store)
        (run,) = measure_items(prepared, parent, store)
        assert run.status == "done" and float(run.result["value"]) == 8.0
        assert store.get_run(run.run_id)["config"]["params"] == {"x": 4, "scale": 0.5, "tag": None}


def test_params_from_picks_fields_by_name_and_prefix_and_names_a_missing_one():
    cfg = {"x": 5, "scale": 3.0, "sq_scale": 7.0, "unrelated": 1}
    assert params_from(cfg, SquareParams) == SquareParams(x=5, scale=3.0)
    assert params_from(cfg, SquareParams, prefix="sq_") == SquareParams(x=5, scale=7.0)
    assert params_from(cfg, SquareParams, x=2, tag="t") == SquareParams(x=2, scale=3.0, tag="t")
    with pytest.raises(ConfigError, match="SquareParams needs 'x'"):
        params_from({"scale": 1.0}, SquareParams)
    with pytest.raises(Exception, match="extra"):
        params_from(cfg, SquareParams, colour="red")
