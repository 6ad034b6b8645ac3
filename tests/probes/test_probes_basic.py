"""Probes `loss` and `accuracy` against direct computation; registry behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from phenolab.probes import get_probe, probe_names, run_probe
from phenolab.tasks.base import Task


def _regression_task() -> Task:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 2, generator=g)
    y = torch.rand(30, 3, generator=g)
    return Task(x_train=x, y_train=y, x_test=x[:7] + 1, y_test=y[:7])


def _classification_task(onehot: bool = False) -> Task:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 4, generator=g)
    labels = torch.randint(0, 3, (40,), generator=g)
    y = F.one_hot(labels, 3).float() if onehot else labels
    return Task(x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:], kind="classification")


def test_builtin_probes_are_registered():
    assert {"loss", "accuracy", "frequency", "filter", "projection"} <= set(probe_names())
    with pytest.raises(KeyError, match="registered"):
        get_probe("nope")


def test_mse_loss_is_mean_of_squares_without_half():
    torch.manual_seed(0)
    net, task = nn.Linear(2, 3), _regression_task()
    out = run_probe("loss", net, task)
    with torch.no_grad():
        train = ((net(task.x_train) - task.y_train) ** 2).mean().item()
        test = ((net(task.x_test) - task.y_test) ** 2).mean().item()
    assert set(out) == {"train", "test"} and isinstance(out["train"], float)
    assert out["train"] == pytest.approx(train, rel=1e-6)
    assert out["test"] == pytest.approx(test, rel=1e-6)


def test_no_test_key_without_test_set():
    task = Task(x_train=torch.zeros(4, 1), y_train=torch.ones(4, 1))
    out = run_probe("loss", nn.Linear(1, 1), task)
    assert set(out) == {"train"}


@pytest.mark.parametrize("onehot", [False, True])
def test_cross_entropy_and_accuracy_match_direct_computation(onehot):
    torch.manual_seed(0)
    net, task = nn.Linear(4, 3), _classification_task(onehot)
    labels = _classification_task(False).y_train
    with torch.no_grad():
        logits = net(task.x_train)
    ce = F.cross_entropy(logits, labels).item()
    acc = (logits.argmax(1) == labels).float().mean().item()
    assert run_probe("loss", net, task)["train"] == pytest.approx(ce, rel=1e-6)
    out = run_probe("accuracy", net, task)
    assert out["train"] == pytest.approx(acc) and set(out) == {"train", "test"}


def test_mse_on_classification_uses_one_hot():
    torch.manual_seed(0)
    net, task = nn.Linear(4, 3), _classification_task()
    with torch.no_grad():
        expected = ((net(task.x_train) - F.one_hot(task.y_train, 3)) ** 2).mean().item()
    assert run_probe("loss", net, task, loss="mse")["train"] == pytest.approx(expected, rel=1e-6)


def test_accuracy_refuses_regression_and_loss_refuses_unknown_name():
    with pytest.raises(ValueError, match="classification"):
        run_probe("accuracy", nn.Linear(2, 3), _regression_task())
    with pytest.raises(ValueError, match="mse"):
        run_probe("loss", nn.Linear(2, 3), _regression_task(), loss="hinge")


def test_perfect_classifier_has_accuracy_one():
    task = _classification_task()

    class Oracle(nn.Module):
        def forward(self, x):
            idx = {tuple(r.tolist()): i for i, r in enumerate(task.x_train)}
            return F.one_hot(torch.tensor([task.y_train[idx[tuple(r.tolist())]] for r in x]), 3).float()

    train = Task(x_train=task.x_train, y_train=task.y_train, kind="classification")
    assert run_probe("accuracy", Oracle(), train) == {"train": 1.0}
    assert np.isclose(run_probe("loss", Oracle(), train, loss="mse")["train"], 0.0)
