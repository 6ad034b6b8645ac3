"""The plain trainer: determinism, equality with a hand-written torch loop, divergence, time limit."""

import math

import pytest
import torch
from torch import nn

from phenolab.config import ProbeSpec, TrainSpec
from phenolab.store import Store
from phenolab.tasks.base import Task
from phenolab.train import Recorder, generator, train
from phenolab.train.loop import batch_plan


def toy_task(n: int = 64) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, n)[:, None]
    y = torch.sin(3 * x) + 0.1 * torch.randn(n, 1, generator=g)
    return Task(x_train=x, y_train=y, grid=True)


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))


def params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("optimizer,batch", [("gd", None), ("sgd", 16), ("adam", 16)])
def test_same_config_same_numbers(optimizer, batch):
    spec = TrainSpec(optimizer=optimizer, lr=0.05, steps=40, batch_size=batch)
    runs = []
    for _ in range(2):
        model = toy_model()
        train(model, toy_task(), spec, generator=generator(1, "batches"))
        runs.append(params(model))
    assert torch.equal(runs[0], runs[1])


def test_gd_equals_a_hand_written_torch_loop():
    task, spec = toy_task(), TrainSpec(optimizer="gd", lr=0.1, steps=25)
    ours = toy_model()
    result = train(ours, task, spec)
    ref = toy_model()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(25):
        opt.zero_grad()
        ((ref(task.x_train) - task.y_train) ** 2).mean().backward()
        opt.step()
    assert torch.allclose(params(ours), params(ref), atol=1e-7)
    assert result.status == "done" and result.steps == 25
    with torch.no_grad():
        ref_loss = float(((ref(task.x_train) - task.y_train) ** 2).mean())
    assert result.final_loss == pytest.approx(ref_loss, rel=1e-6)


def test_sgd_batches_cover_each_epoch_once_and_reshuffle():
    plan = batch_plan(10, TrainSpec(optimizer="sgd", batch_size=5), torch.Generator().manual_seed(0))
    epoch0 = torch.cat([plan(0), plan(1)])
    epoch1 = torch.cat([plan(2), plan(3)])
    assert sorted(epoch0.tolist()) == list(range(10)) == sorted(epoch1.tolist())
    assert not torch.equal(epoch0, epoch1)


def test_gd_rejects_a_batch_size():
    with pytest.raises(ValueError, match="train.batch_size"):
        train(toy_model(), toy_task(), TrainSpec(optimizer="gd", batch_size=8, steps=2))


def test_divergence_stops_cleanly():
    result = train(toy_model(), toy_task(), TrainSpec(optimizer="gd", lr=50.0, steps=500, max_loss=1e3))
    assert result.status == "diverged" and result.steps < 500
    assert "train.max_loss" in result.reason or "nan" in result.reason.lower()
    assert not math.isfinite(result.final_loss) or result.final_loss > 1e3


def test_time_limit_fails_with_reason():
    result = train(toy_model(), toy_task(), TrainSpec(optimizer="gd", lr=0.01, steps=10**7, time_limit=0.2))
    assert result.status == "failed" and "time limit" in result.reason and 0 < result.steps < 10**7


def test_probes_are_scheduled_and_recorded(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    task = toy_task()
    spec = TrainSpec(optimizer="adam", lr=0.01, steps=30, probe_every=10)
    with Recorder(store, "toy", spec, kind="train") as rec:
        train(toy_model(), task, spec, probes=[ProbeSpec(name="loss"), ProbeSpec(name="frequency", every=15),
                                               ProbeSpec(name="outputs", every=4, start=13)],
              recorder=rec)
    m = store.metrics(rec.run_id)
    loss_steps = sorted(m[m.name == "loss/train"].step)
    assert loss_steps == [0, 10, 20, 30]
    assert sorted(set(m[m.name == "frequency/rel_err_0"].step)) == [0, 15, 30]
    outputs = store.load_artifact(rec.run_id, "outputs/y_pred")
    assert list(outputs["steps"]) == [16, 20, 24, 28, 30]  # from step 13 on, every 4, and the last
    assert sorted(m[m.name == "loss"].step) == list(range(31))
    art = store.load_artifact(rec.run_id, "frequency/rel_err")
    assert list(art["steps"]) == [0, 15, 30] and art["values"].shape[0] == 3
    assert store.get_run(rec.run_id)["status"] == "done"


def test_stop_ratio_ends_the_run_early_as_done(tmp_path):
    spec = TrainSpec(optimizer="adam", lr=0.02, steps=5000, stop_ratio=0.05, probe_every=1000)
    store = Store(tmp_path / "s.sqlite")
    with Recorder(store, "toy", spec, kind="train") as rec:
        result = train(toy_model(), toy_task(), spec, probes=[ProbeSpec(name="loss")], recorder=rec)
    losses = store.metrics(rec.run_id)
    loss = losses[losses.name == "loss"].set_index("step")["value"]
    assert result.status == "done" and result.steps < 5000
    assert loss.iloc[-1] <= 0.05 * loss.iloc[0] < loss.iloc[-2]
    probe_steps = sorted(losses[losses.name == "loss/train"].step)
    assert probe_steps[-1] == result.steps and len(probe_steps) == len(set(probe_steps))


def test_loss_jump_restarts_from_init_at_half_the_lr():
    task = toy_task()
    spec = TrainSpec(optimizer="gd", lr=8.0, steps=300, restart_on_jump=0.5, max_loss=1e12)
    result = train(toy_model(), task, spec)
    assert result.restarts >= 1 and result.lr == 8.0 / 2 ** result.restarts
    assert result.status == "done" and result.final_loss < 0.1
    without = train(toy_model(), task, spec.model_copy(update={"restart_on_jump": None}))
    assert without.status == "diverged"


def test_zero_steps_only_probes_the_initialization(tmp_path):
    spec = TrainSpec(optimizer="gd", lr=0.1, steps=0)
    store = Store(tmp_path / "s.sqlite")
    model = toy_model()
    before = params(model)
    with Recorder(store, "toy", spec, kind="train") as rec:
        result = train(model, toy_task(), spec, probes=[ProbeSpec(name="loss")], recorder=rec)
    assert result.status == "done" and result.steps == 0 and torch.equal(params(model), before)
    m = store.metrics(rec.run_id)
    assert sorted(m[m.name == "loss/train"].step) == [0]
