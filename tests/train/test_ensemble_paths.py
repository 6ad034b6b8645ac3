"""The fused ReLU path's exact activation pattern, the buffering recorder, and worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_ensemble import PROBES, run_spec, task_of  # this folder is on sys.path

from phenolab.config import MLPSpec, RunSpec, validate
from phenolab.models import build_model
from phenolab.objectives import mse
from phenolab.store import Store
from phenolab.train import Recorder
from phenolab.train.ensemble import train_ensemble
from phenolab.train.fused_relu1d import FusedRelu1d
from phenolab.train.recorder import BufferRecorder
from phenolab.train.workers import split

pytestmark = pytest.mark.usefixtures("one_thread")


def stacked(models: list[torch.nn.Module]) -> list[torch.Tensor]:
    names = [name for name, _ in models[0].named_parameters()]
    return [torch.stack([dict(m.named_parameters())[name].detach() for m in models]) for name in names]


@pytest.mark.parametrize("parametrization", ["standard", "mean_field"])
@pytest.mark.parametrize("bias,output_bias,outputs", [(True, None, 1), (False, None, 2), (True, False, 3)])
@pytest.mark.parametrize("batch", [False, True])
def test_fused_gradients_equal_autograd_with_ties_and_zero_weights(parametrization, bias, output_bias, outputs, batch):
    spec = MLPSpec(width=40, activation="relu", parametrization=parametrization, bias=bias,
                     output_bias=output_bias, output_scale=0.7)
    models = [build_model(spec, 1, outputs, torch.Generator().manual_seed(i)) for i in range(3)]
    g = torch.Generator().manual_seed(9)
    x = torch.rand(30, 1, generator=g) * 4 - 2
    x[5] = x[7]  # a repeated point
    y = torch.randn(30, outputs, generator=g)
    with torch.no_grad():
        hidden = models[0].layers[0]
        hidden.weight[3, 0], hidden.weight[4, 0] = 0.0, -0.0  # u = 0: active everywhere iff b > 0
        if bias:
            hidden.bias[3] = 0.25
            for k in range(10, 20):  # z(x_k) = 0 exactly in float32: relu'(0) = 0, inactive
                hidden.bias[k] = -(models[0].multipliers[0] * (x[k, 0] * hidden.weight[k, 0]))
    mult1, mult2 = models[0].multipliers
    fused = FusedRelu1d(x, y, mult1=mult1, mult2=mult2, hidden_bias=bias,
                        output_bias=models[0].layers[1].bias is not None)
    params = stacked(models)
    grads = [torch.empty_like(p) for p in params]
    idx = torch.stack([torch.randperm(30, generator=g)[:12] for _ in models]) if batch else None
    loss = fused.loss_and_grads(params, torch.full((3,), 0.7, dtype=torch.float64), idx, grads)
    for e, model in enumerate(models):
        xb, yb = (x, y) if idx is None else (x[idx[e]], y[idx[e]])
        model.zero_grad()
        ref = mse(model(xb), yb)
        ref.backward()
        assert loss[e].item() == pytest.approx(ref.item(), rel=1e-6)
        for grad, (name, p) in zip(grads, model.named_parameters()):
            # a wrong activation decision at one point would be off by ~|g a| ~ 1e-2 of the scale
            assert (grad[e] - p.grad).abs().max().item() <= 2e-6 * (p.grad.abs().max().item() + 1e-3), name


def test_buffer_recorder_replays_in_order(tmp_path):
    spec = validate(RunSpec, {**run_spec(steps=30).model_dump(), "probes": PROBES})
    task = task_of(spec)
    store = Store(tmp_path / "s.sqlite")
    direct = Recorder(store, "x", spec, kind="train")
    buffer = BufferRecorder()
    train_ensemble(task, [spec, spec], recorders=[direct, buffer])
    direct.close("done")
    replayed = Recorder(store, "x", spec, kind="train")
    buffer.replay(replayed)
    replayed.close("done")
    a, b = store.metrics(direct.run_id), store.metrics(replayed.run_id)
    assert a.equals(b)
    arrays = store.load_artifact(replayed.run_id, "outputs/y_pred")
    assert np.array_equal(arrays["values"], store.load_artifact(direct.run_id, "outputs/y_pred")["values"])


def test_split_is_contiguous_and_balanced():
    assert split(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert split(2, 4) == [range(0, 1), range(1, 2)]


def test_workers_give_the_same_results_and_records(tmp_path):
    specs = [validate(RunSpec, {**run_spec(seed, steps=40, lr=0.02 * (seed + 1)).model_dump(), "probes": PROBES})
             for seed in range(3)]
    task = task_of(specs[0])
    store = Store(tmp_path / "s.sqlite")
    here = [Recorder(store, "x", s, kind="train") for s in specs]
    there = [Recorder(store, "x", s, kind="train") for s in specs]
    ones = train_ensemble(task, specs, recorders=here)
    twos = train_ensemble(task, specs, recorders=there, workers=2)
    for one, two, r1, r2 in zip(ones, twos, here, there):
        r1.close(one.status)
        r2.close(two.status)
        assert (one.status, one.steps, one.final_loss) == (two.status, two.steps, two.final_loss)
        assert all(torch.equal(one.state[k], two.state[k]) for k in one.state)
        assert store.metrics(r1.run_id).equals(store.metrics(r2.run_id))


def test_fused_boundaries_on_clustered_points_and_nonfinite_weights():
    g = torch.Generator().manual_seed(3)
    centers = torch.tensor([-1.0, 0.2, 0.2 + 1e-6, 3.0])
    x = (centers.repeat_interleave(8) + 1e-7 * torch.randn(32, generator=g))[:, None]  # tight clusters
    y = torch.randn(32, 1, generator=g)
    spec = MLPSpec(width=64, activation="relu")
    models = [build_model(spec, 1, 1, torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        hidden = models[1].layers[0]
        for k in range(32):  # thresholds at (rounded) data points, inside the clusters
            hidden.bias[k] = -(x[k, 0] * hidden.weight[k, 0])
    fused = FusedRelu1d(x, y, mult1=1.0, mult2=1.0, hidden_bias=True, output_bias=True)
    params = stacked(models)
    grads = [torch.empty_like(p) for p in params]
    loss = fused.loss_and_grads(params, torch.ones(2, dtype=torch.float64), None, grads)
    for e, model in enumerate(models):
        model.zero_grad()
        ref = mse(model(x), y)
        ref.backward()
        assert loss[e].item() == pytest.approx(ref.item(), rel=1e-6)
        for grad, (name, p) in zip(grads, model.named_parameters()):
            assert (grad[e] - p.grad).abs().max().item() <= 2e-6 * (p.grad.abs().max().item() + 1e-3), name
    broken = [p.clone() for p in params]
    broken[0][0, :3, 0] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    broken[1][1, :2] = torch.tensor([float("nan"), float("inf")])
    loss = fused.loss_and_grads(broken, torch.ones(2, dtype=torch.float64), None, grads)
    assert not torch.isfinite(loss).any()  # no crash; the ensemble stops such members as diverged
