"""`predict`: no gradients, eval mode during the call, training flags restored, dtype cast."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from phenolab.probes import predict, run_probe
from phenolab.tasks.base import Task


def _dropout_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Dropout(p=0.5), nn.Linear(16, 1))


def test_predict_restores_mixed_training_flags_and_is_deterministic():
    net = _dropout_net()
    net.train()
    net[1].eval()  # one submodule deliberately in eval mode
    before = [m.training for m in net.modules()]
    x = torch.linspace(-1, 1, 20)[:, None]
    a, b = predict(net, x), predict(net, x)
    assert [m.training for m in net.modules()] == before
    assert torch.equal(a, b)
    assert not a.requires_grad
    net.eval()
    assert torch.equal(a, net(x).detach())


def test_probe_keeps_dropout_model_in_train_mode():
    net = _dropout_net().train()
    x = torch.linspace(-1, 1, 33)[:, None]
    task = Task(x_train=x, y_train=torch.sin(x), grid=True)
    first = run_probe("loss", net, task)
    second = run_probe("loss", net, task)
    assert net.training and all(m.training for m in net.modules())
    assert first == second


def test_predict_casts_to_model_dtype_and_batches():
    net = nn.Linear(3, 2).double()
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    out = predict(net, x, batch_size=3)
    assert out.dtype == torch.float64 and out.shape == (10, 2)
    assert torch.allclose(out, net(torch.as_tensor(x, dtype=torch.float64)).detach())


def test_predict_restores_flags_on_error():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    net = Boom().train()
    try:
        predict(net, torch.zeros(2, 1))
    except RuntimeError:
        pass
    assert net.training
