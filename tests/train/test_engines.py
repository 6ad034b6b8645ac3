"""Engines: chosen from the config alone, recorded with the run; the stopping rules, schedules,
weight decay and clipping are the same in every torch trainer; the numpy engine for non-torch systems."""

import math
from typing import Literal

import numpy as np
import pytest
import torch
from test_ensemble import alone, assert_same, run_spec, task_of  # this folder is on sys.path

from phenolab.config import MODEL_KINDS, ConfigError, KindSpec, RunSpec, TrainSpec, validate
from phenolab.execution.groups import TrainItem, train_items
from phenolab.models import register_model
from phenolab.models import registry as model_registry
from phenolab.store import Store
from phenolab.tasks import make_task
from phenolab.train.engines import engine_of, train_group
from phenolab.train.ensemble import train_ensemble
from phenolab.train.recorder import BufferRecorder
from phenolab.train.schedule import lr_factor


def spec_with(**changes) -> RunSpec:
    base = {"model": {"width": 8, "activation": "tanh"},
            "data": {"kind": "sines", "n_train": 20, "seed": 0}, "train": {"steps": 30, "optimizer": "gd", "lr": 0.05}}
    for key, value in changes.items():
        block, field = key.split("__")
        base.setdefault(block, {})[field] = value
    return validate(RunSpec, base)


def test_auto_picks_the_engine_from_the_config_alone():
    task = make_task(spec_with().data, 0)
    assert engine_of(spec_with(), task) == "ensemble"
    assert engine_of(spec_with(train__loss="half_mse"), task) == "ensemble"  # the generic vmap path
    assert engine_of(spec_with(train__engine="plain"), task) == "plain"
    conv = validate(RunSpec, {"model": {"kind": "conv", "kernel": 1}, "data": {"kind": "sines", "n_train": 8}})
    assert engine_of(conv, make_task(conv.data, 0)) == "ensemble"  # conv declares itself stackable
    mf = validate(RunSpec, {"model": {"kind": "matrix_factorization", "rows": 3, "cols": 3},
                            "data": {"kind": "product", "n_train": 8}, "train": {"engine": "ensemble"}})
    with pytest.raises(ConfigError, match="train.engine: ensemble needs a stackable model kind"):
        engine_of(mf, make_task(mf.data, 0))
    big = spec_with(model__width=600, model__depth=2)  # 600^2 weights: stacking does not pay
    assert engine_of(big, task) == "plain"


def _alone_and_ensemble(specs, task):
    """Each spec by the plain loop, and all of them as one ensemble; the ensemble's recorders too."""
    from phenolab.train.engines import _plain

    plain = _plain(task, specs, [BufferRecorder() for _ in specs], None)
    recorders = [BufferRecorder() for _ in specs]
    stacked = train_ensemble(task, specs, recorders=recorders)
    return plain, stacked, recorders


@pytest.mark.parametrize("changes", [
    {"train__loss": "half_mse", "train__optimizer": "sgd", "train__batch_size": 8, "train__momentum": 0.9},
    {"train__loss": "half_mse", "train__optimizer": "adam", "train__weight_decay": 0.1, "train__clip_norm": 0.5},
])
def test_the_generic_vmap_path_equals_the_plain_loop_for_an_mlp(changes):
    specs = [spec_with(train__dtype="float64", train__steps=60, model__centered=True, **changes)
             .model_copy(update={"seed": s}) for s in range(3)]
    task = make_task(specs[0].data, 0, dtype=torch.float64)
    plain, stacked, _ = _alone_and_ensemble(specs, task)
    assert {r.engine for r in stacked} == {"ensemble/vmap"}
    for a, b in zip(plain, stacked):
        assert (a.status, a.steps) == (b.status, b.steps)
        assert b.final_loss == pytest.approx(a.final_loss, rel=1e-9)


def test_a_stackable_conv_trains_as_an_ensemble_like_alone():
    base = {"model": {"kind": "conv", "kernel": 2, "channels": 3, "bias": True},
            "data": {"kind": "teacher", "input_dim": 5, "n_train": 40, "seed": 0},
            "train": {"optimizer": "adam", "lr": 1e-2, "steps": 80, "dtype": "float64"}}
    specs = [validate(RunSpec, {**base, "seed": s}) for s in range(3)]
    task = make_task(specs[0].data, 0, dtype=torch.float64)
    plain, stacked, recorders = _alone_and_ensemble(specs, task)
    assert {r.engine for r in stacked} == {"ensemble/vmap"}
    assert len({round(r.final_loss, 12) for r in stacked}) == 3  # three different members
    for a, b, rec in zip(plain, stacked, recorders):
        assert b.final_loss == pytest.approx(a.final_loss, rel=1e-9)
        first = next(values["loss"] for kind, _, values in rec.events if kind == "scalars" and "loss" in values)
        assert b.final_loss < 0.5 * first  # it trained


def test_one_config_hash_one_result_alone_or_inside_a_group(tmp_path):
    """Seed 0 trained alone and inside a three-seed ensemble gives the same stored numbers: the
    engine is a function of the config, not of the company a run keeps."""
    specs = [spec_with(train__steps=60) .model_copy(update={"seed": s}) for s in range(3)]
    probes = [{"name": "loss"}]
    specs = [validate(RunSpec, {**s.model_dump(mode="json"), "probes": probes}) for s in specs]
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        lone = train_items([TrainItem("x", "seed=0", specs[0])], a)[0]
        group = train_items([TrainItem("x", f"seed={s.seed}", s) for s in specs], b)[0]
        assert lone.metrics.equals(group.metrics)
        assert a.get_run(lone.run_id)["summary"]["engine"] == "ensemble/stacked"
        assert b.get_run(group.run_id)["summary"]["engine"] == "ensemble/stacked"


def test_schedule_factors():
    tr = TrainSpec(steps=10, warmup=4, schedule="cosine")
    assert [lr_factor(tr, t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(tr, 4) == 1.0 and lr_factor(tr, 7) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert lr_factor(TrainSpec(), 123) == 1.0
    assert TrainSpec(warmup=3).model_dump(mode="json")["warmup"] == 3
    assert "warmup" not in TrainSpec().model_dump(mode="json")


@pytest.mark.parametrize("activation", ["relu", "tanh"])  # relu: the fused path, tanh: stacked
@pytest.mark.parametrize("optimizer,extra", [
    ("adam", {"weight_decay": 0.1, "warmup": 20, "schedule": "cosine", "lr": 1e-2}),  # AdamW
    ("sgd", {"weight_decay": 0.05, "momentum": 0.9, "batch_size": 16, "lr": 0.02, "clip_norm": 0.5}),
    ("gd", {"clip_norm": 0.1, "warmup": 10, "lr": 0.1}),
])
def test_every_torch_trainer_takes_the_same_options(activation, optimizer, extra):
    specs = [run_spec(seed, activation=activation, optimizer=optimizer, steps=80, **extra) for seed in range(3)]
    task = task_of(specs[0])
    for member, spec in zip(train_ensemble(task, specs), specs):
        assert_same(member, *alone(spec, task))
    without = alone(run_spec(0, activation=activation, optimizer=optimizer, steps=80,
                             **{k: v for k, v in extra.items() if k in ("momentum", "batch_size", "lr")}), task)
    assert without[0].final_loss != alone(specs[0], task)[0].final_loss  # the options do something


# ----------------------------------------------------------------------------- a numpy system
class LinearNumpySpec(KindSpec):
    kind: Literal["test_numpy_linear"] = "test_numpy_linear"


class LinearNumpy:
    """f(x) = x w, loss (1/2n) |f - y|^2, in numpy."""

    def __init__(self, d: int, seed: int) -> None:
        self.w = np.random.default_rng(seed).normal(size=(d, 1))

    def parameters(self):
        return {"w": self.w}

    def loss_and_gradient(self, x, y):
        r = x @ self.w - y.reshape(-1, 1)
        return float((r ** 2).sum() / (2 * len(x))), {"w": x.T @ r / len(x)}


@pytest.fixture()
def numpy_kind():
    register_model(LinearNumpySpec, lambda spec, d, k, generator, dtype: LinearNumpy(d, generator.initial_seed()),
                   engine="numpy")
    yield
    MODEL_KINDS._kinds.pop("test_numpy_linear")
    model_registry._KINDS.pop("test_numpy_linear")


def test_a_numpy_system_trains_with_the_same_rules_and_records(numpy_kind):
    base = {"model": {"kind": "test_numpy_linear"}, "data": {"kind": "linear_teacher", "input_dim": 4, "n_train": 50},
            "train": {"optimizer": "gd", "lr": 0.3, "steps": 200, "probe_every": 50}}
    spec = validate(RunSpec, base)
    task = make_task(spec.data, 0, dtype=torch.float64)
    assert engine_of(spec, task) == "numpy"
    buffer = BufferRecorder()
    (result,) = train_group(task, [spec], [buffer])
    assert result.status == "done" and result.engine == "numpy" and result.final_loss < 1e-6
    diverging = validate(RunSpec, {**base, "train": {**base["train"], "lr": 50.0, "max_loss": 1e3}})
    (bad,) = train_group(task, [diverging], [BufferRecorder()])
    assert bad.status == "diverged" and bad.reason.startswith("loss = ") and "train.max_loss = 1000" in bad.reason
    with pytest.raises(ConfigError, match="train.engine: model.kind test_numpy_linear is not a torch module"):
        engine_of(validate(RunSpec, {**base, "train": {**base["train"], "engine": "plain"}}), task)
