"""The ensemble trainer equals the plain trainer member by member, on both gradient paths."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from phenolab.config import RunSpec, validate
from phenolab.models import build_model
from phenolab.store import Store
from phenolab.tasks import Task, make_task
from phenolab.train import Recorder, generator, train
from phenolab.train.ensemble import MemberResult, ensemble_key, fused_applies, train_ensemble
from phenolab.train.loop import TrainResult

pytestmark = pytest.mark.usefixtures("one_thread")


TOL = 1e-5  # max weight difference relative to max(1, |w|), float32, after 200 steps


def run_spec(seed: int = 0, *, activation: str = "relu", optimizer: str = "gd", lr: float = 0.05,
             gamma: float = 0.5, steps: int = 200, **train: Any) -> RunSpec:
    return validate(RunSpec, {
        "model": {"width": 64, "activation": activation, "init": {"gamma": gamma}},
        "data": {"kind": "sines", "n_train": 50, "interval": [-2, 2], "frequencies": [1.0, 2.0],
                 "amplitudes": [1.0, 0.5], "seed": 0},
        "train": {"optimizer": optimizer, "lr": lr, "steps": steps, "probe_every": 50, **train},
        "seed": seed,
    })


def task_of(spec: RunSpec) -> Task:
    return make_task(spec.data, spec.seed)


def alone(spec: RunSpec, task: Task, recorder: Recorder | None = None) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    """The plain trainer on one member, as the experiment runner calls it."""
    model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"))
    order = spec.seed if spec.train.batch_seed is None else spec.train.batch_seed
    result = train(model, task, spec.train, probes=spec.probes, recorder=recorder,
                   generator=generator(order, "batches"))
    return result, {name: p.detach() for name, p in model.named_parameters()}


def assert_same(member: MemberResult, plain: TrainResult, weights: dict[str, torch.Tensor]) -> None:
    assert (member.status, member.steps, member.restarts, member.reason) == \
        (plain.status, plain.steps, plain.restarts, plain.reason)
    assert member.lr == plain.lr
    assert member.final_loss == pytest.approx(plain.final_loss, rel=1e-5, abs=1e-7) or \
        not math.isfinite(plain.final_loss)
    for name, w in weights.items():  # TOL relative to the weight's size: float32 rounds 56.2 to 4e-6
        assert ((member.state[name] - w).abs() / w.abs().clamp(min=1)).max().item() < TOL, name


OPTIMIZERS = [
    ("gd", {}, [0.05, 0.02, 0.1, 0.03]),
    ("sgd", {"batch_size": 16, "momentum": 0.9}, [0.02, 0.01, 0.03, 0.005]),
    ("adam", {"batch_size": 16}, [1e-3, 3e-3, 2e-3, 1e-2]),
]


@pytest.mark.parametrize("activation", ["relu", "tanh"])  # relu: the fused path, tanh: stacked
@pytest.mark.parametrize("optimizer,extra,lrs", OPTIMIZERS)
def test_members_equal_the_plain_trainer(activation, optimizer, extra, lrs):
    gammas = [0.5, 0.8, 1.0, 0.3]
    specs = [run_spec(seed, activation=activation, optimizer=optimizer, lr=lr, gamma=g, **extra)
             for seed, (lr, g) in enumerate(zip(lrs, gammas))]
    task = task_of(specs[0])
    for member, spec in zip(train_ensemble(task, specs), specs):
        assert_same(member, *alone(spec, task))


def test_a_shared_batch_seed_gives_every_member_the_same_minibatch_order():
    specs = [run_spec(seed, optimizer="sgd", lr=0.02, batch_size=16, batch_seed=7) for seed in range(3)]
    task = task_of(specs[0])
    for member, spec in zip(train_ensemble(task, specs), specs):
        assert_same(member, *alone(spec, task))
    # the shared order differs from a member's own: same init, other order, other weights
    own = run_spec(1, optimizer="sgd", lr=0.02, batch_size=16)
    shared = train_ensemble(task, [specs[1]])[0].state["layers.0.weight"]
    assert not torch.equal(shared, train_ensemble(task, [own])[0].state["layers.0.weight"])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_diverging_member_stops_and_the_others_go_on(activation):
    specs = [run_spec(0, activation=activation), run_spec(1, activation=activation, lr=50.0, max_loss=1e3),
             run_spec(2, activation=activation, lr=0.02)]
    task = task_of(specs[0])
    results = train_ensemble(task, specs)
    assert results[1].status == "diverged" and results[1].steps < 200
    for member, spec in zip(results, specs):
        assert_same(member, *alone(spec, task))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_stop_ratio_and_restart_happen_at_the_plain_trainers_steps(activation):
    specs = [
        run_spec(0, activation=activation, stop_ratio=0.3),
        run_spec(1, activation=activation, lr=0.3, restart_on_jump=0.5, max_restarts=5),
        run_spec(2, activation=activation, lr=0.03),
    ]
    task = task_of(specs[0])
    results = train_ensemble(task, specs)
    assert results[0].status == "done" and results[0].steps < 200
    if activation == "relu":
        assert results[1].restarts >= 1
    for member, spec in zip(results, specs):
        assert_same(member, *alone(spec, task))


def test_time_limit_fails_members_with_the_reason():
    specs = [run_spec(0, time_limit=1e-9), run_spec(1)]
    results = train_ensemble(task_of(specs[0]), specs)
    assert results[0].status == "failed" and results[0].steps == 1
    assert results[0].reason == "time limit train.time_limit = 1e-09 s reached after 1 steps"
    assert results[1].status == "done" and results[1].steps == 200


PROBES = [{"name": "loss"}, {"name": "relative_distance", "every": 40}, {"name": "outputs", "every": 100}]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_recorded_series_equal_the_plain_trainers(tmp_path, activation):
    specs = [
        validate(RunSpec, {**run_spec(seed, activation=activation, lr=lr, **extra).model_dump(), "probes": PROBES})
        for seed, lr, extra in [(0, 0.05, {}), (1, 0.1, {"stop_ratio": 0.3}), (2, 0.02, {})]
    ]
    task = task_of(specs[0])
    store = Store(tmp_path / "s.sqlite")
    ours = [Recorder(store, "x", spec, kind="train") for spec in specs]
    results = train_ensemble(task, specs, recorders=ours)
    assert results[1].steps < 200  # stopped early: its last probes ran at its stop step
    for member, spec, rec in zip(results, specs, ours):
        rec.close(member.status)
        ref = Recorder(store, "x", spec, kind="train")
        alone(spec, task, ref)
        ref.close("done")
        a, b = store.metrics(rec.run_id), store.metrics(ref.run_id)
        assert list(zip(a["name"], a["step"])) == list(zip(b["name"], b["step"]))
        assert a["value"].to_numpy() == pytest.approx(b["value"].to_numpy(), rel=1e-5, abs=1e-5)
        ours_pred = store.load_artifact(rec.run_id, "outputs/y_pred")
        ref_pred = store.load_artifact(ref.run_id, "outputs/y_pred")
        assert list(ours_pred["steps"]) == list(ref_pred["steps"])
        assert ours_pred["values"] == pytest.approx(ref_pred["values"], abs=1e-5)


def test_float64_fused_and_stacked_paths_agree():
    specs = [validate(RunSpec, {**run_spec(seed, gamma=g, lr=0.05).model_dump(),
                                "train": {**run_spec().train.model_dump(), "dtype": "float64", "steps": 50}})
             for seed, g in [(0, 0.5), (1, 1.0)]]
    task = make_task(specs[0].data, 0, dtype=torch.float64)
    fused = train_ensemble(task, specs, path="fused")
    stacked = train_ensemble(task, specs, path="stacked")
    for f, s in zip(fused, stacked):
        for name in f.state:
            assert (f.state[name] - s.state[name]).abs().max().item() < 1e-12


def test_the_state_loads_into_the_members_model():
    spec = run_spec(3, steps=20)
    task = task_of(spec)
    (member,) = train_ensemble(task, [spec])
    model = build_model(spec.model, 1, 1, generator(spec.seed, "model"))
    model.load_state_dict(member.state)
    with torch.no_grad():
        loss = float(((model(task.x_train) - task.y_train) ** 2).mean())
    assert loss == pytest.approx(member.final_loss, rel=1e-5)


def test_members_must_share_their_key():
    a, b = run_spec(0), run_spec(1, activation="tanh")
    assert ensemble_key(a, 1, 1) != ensemble_key(b, 1, 1)
    assert ensemble_key(a, 1, 1) == ensemble_key(run_spec(5, lr=0.3, gamma=1.0, stop_ratio=0.1), 1, 1)
    with pytest.raises(ValueError, match="cannot train with spec 0"):
        train_ensemble(task_of(a), [a, b])
    # data with an unset seed follows the run's seed: different seeds, different data
    c = validate(RunSpec, {**a.model_dump(), "data": {**a.data.model_dump(), "seed": None}})
    assert ensemble_key(c, 1, 1) != ensemble_key(validate(RunSpec, {**c.model_dump(), "seed": 1}), 1, 1)


def test_progress_and_validation():
    seen: list[tuple[int, int]] = []
    specs = [run_spec(0, steps=5), run_spec(1, steps=5)]
    train_ensemble(task_of(specs[0]), specs, progress=lambda step, total: seen.append((step, total)))
    assert seen == [(s, 5) for s in range(1, 6)]
    with pytest.raises(ValueError, match="path=fused"):
        train_ensemble(task_of(specs[0]), [run_spec(0, activation="tanh")], path="fused")
    with pytest.raises(ValueError, match="train.batch_size"):
        train_ensemble(task_of(specs[0]), [run_spec(0, batch_size=8)])
    assert train_ensemble(task_of(specs[0]), []) == []


@pytest.mark.parametrize("model,data,loss", [
    ({"widths": [24, 16], "activation": "gelu", "parametrization": "ntk"},
     {"kind": "teacher", "input_dim": 3, "n_train": 40, "seed": 0}, "mse"),
    ({"width": 32, "activation": "sigmoid", "parametrization": "mean_field", "output_bias": False},
     {"kind": "teacher", "input_dim": 2, "n_train": 40, "seed": 0}, "mse"),
    ({"width": 32, "activation": "relu", "bias": False, "parametrization": "mean_field"},
     {"kind": "sines", "n_train": 40, "seed": 0}, "mse"),
    ({"width": 16, "activation": "tanh"}, {"kind": "digits", "n_train": 60, "seed": 0}, "cross_entropy"),
])
def test_other_architectures_and_losses(model, data, loss):
    specs = [validate(RunSpec, {
        "model": {**model, "init": {"gamma": g}, "output_scale": s},
        "data": data,
        "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 16, "momentum": 0.5, "steps": 100, "loss": loss},
        "seed": seed,
    }) for seed, (g, s) in enumerate([(0.5, 1.0), (0.8, 2.0), (0.3, 0.5)])]
    task = task_of(specs[0])
    for member, spec in zip(train_ensemble(task, specs), specs):
        assert_same(member, *alone(spec, task))


def committee_spec(seed: int, alpha: float, *, eps: float = 0.2, optimizer: str = "gd", lr: float | None = None,
                   centered: bool = True, steps: int = 150, **train: Any) -> RunSpec:
    """Kumar et al.'s committee machine: quadratic activation, readouts fixed to 1, centred output."""
    width = 16
    return validate(RunSpec, {
        "model": {"width": width, "activation": "quadratic", "activation_param": eps, "bias": False,
                  "fixed_readout": 1.0, "centered": centered, "output_scale": alpha / width, "init": {"std": 1.0}},
        "data": {"kind": "quadratic_teacher", "input_dim": 6, "n_train": 24, "seed": 0},
        "train": {"optimizer": optimizer, "lr": lr if lr is not None else width / (4 * alpha**2), "steps": steps,
                  "probe_every": 50, **train},
        "seed": seed,
    })


@pytest.mark.parametrize("optimizer,extra,lrs", [
    ("gd", {}, [None, None, None]),
    ("sgd", {"batch_size": 8, "momentum": 0.5}, [2.0, 1.0, 0.5]),  # minibatches: the centred offsets are gathered
    ("adam", {"batch_size": 8}, [1e-2, 3e-3, 1e-3]),
])
def test_committee_members_with_fixed_readout_and_centring_equal_the_plain_trainer(optimizer, extra, lrs):
    """Members that differ in alpha (output scale and lr) share one stack; the frozen readout
    stays 1, the centred output is the plain trainer's."""
    specs = [committee_spec(seed, alpha, optimizer=optimizer, lr=lr, **extra)
             for seed, (alpha, lr) in enumerate(zip([0.5, 1.0, 2.0], lrs))]
    task = task_of(specs[0])
    assert len({ensemble_key(s, 6, 1) for s in specs}) == 1
    assert not fused_applies(specs[0], task)
    for member, spec in zip(train_ensemble(task, specs), specs):
        result, weights = alone(spec, task)
        assert_same(member, result, weights)
        assert torch.equal(member.state["layers.1.weight"], torch.ones(1, 16))
        assert member.final_loss < 0.9 * float((task.y_train**2).mean())  # it trained


def test_activation_parameter_and_centring_are_part_of_the_ensemble_key():
    base = committee_spec(0, 1.0)
    assert ensemble_key(base, 6, 1) == ensemble_key(committee_spec(1, 2.0), 6, 1)
    assert ensemble_key(base, 6, 1) != ensemble_key(committee_spec(0, 1.0, eps=0.4), 6, 1)
    assert ensemble_key(base, 6, 1) != ensemble_key(committee_spec(0, 1.0, centered=False), 6, 1)
    relu = validate(RunSpec, {**run_spec(0).model_dump(), "model": {**run_spec(0).model.model_dump(),
                                                                    "fixed_readout": 1.0}})
    assert not fused_applies(relu, task_of(relu))
    with pytest.raises(ValueError, match="path=fused"):
        train_ensemble(task_of(relu), [relu], path="fused")


def test_a_centred_members_state_loads_into_its_model():
    spec = committee_spec(0, 1.0, steps=20)
    task = task_of(spec)
    (member,) = train_ensemble(task, [spec, committee_spec(1, 2.0, steps=20)])[:1]
    model = build_model(spec.model, 6, 1, generator(spec.seed, "model"))
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(member.state)  # strict: parameters and the reference buffers
    assert torch.equal(model.reference.weight_0, reference["reference.weight_0"])
    with torch.no_grad():
        loss = float(((model(task.x_train) - task.y_train) ** 2).mean())
    assert loss == pytest.approx(member.final_loss, rel=1e-5)
