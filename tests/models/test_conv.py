"""Conv1dSumPool: f(x) = sum_c a_c sum_p sigma(w_c . x[p:p+kernel] + b_c), against an explicit loop
and torch's conv1d; InputSubset: a module wired to some inputs only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from phenolab.models.conv import Conv1dSumPool, InputSubset


def _x(n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_forward_is_the_formula_and_torch_conv1d():
    model = Conv1dSumPool(7, 3, channels=2, bias=True, generator=torch.Generator().manual_seed(0))
    x = _x(5, 7)
    w, b, a = model.weight.detach(), model.bias.detach(), model.readout.detach()
    loop = torch.zeros(5, dtype=torch.float64)
    for c in range(2):
        for p in range(7 - 3 + 1):
            loop += a[c] * torch.tanh(x[:, p : p + 3] @ w[c] + b[c])
    out = model(x)
    assert out.shape == (5, 1)
    torch.testing.assert_close(out[:, 0], loop)
    conv = F.conv1d(x[:, None, :], w[:, None, :], b)  # (n, channels, positions)
    torch.testing.assert_close(out[:, 0], torch.tanh(conv).sum(2) @ a)


def test_parameters_init_and_dtype():
    model = Conv1dSumPool(6, 2, channels=3, activation="relu", generator=torch.Generator().manual_seed(4))
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == [("weight", (3, 2)), ("readout", (3,))]
    again = Conv1dSumPool(6, 2, channels=3, activation="relu", generator=torch.Generator().manual_seed(4),
                          dtype=torch.float32)
    assert again.weight.dtype == torch.float32
    torch.testing.assert_close(again.weight.double(), model.weight.detach(), atol=1e-7, rtol=1e-6)
    std = Conv1dSumPool(6, 2, channels=200, init_std=1e-3)
    assert 0.8e-3 < std.weight.std().item() < 1.2e-3 and 0.8e-3 < std.readout.std().item() < 1.2e-3
    assert "kernel=2" in repr(model) and "'relu'" in repr(model)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"d": 3, "kernel": 4}, "kernel"), ({"d": 3, "kernel": 0}, "kernel"),
    ({"d": 3, "kernel": 2, "channels": 0}, "channels"), ({"d": 3, "kernel": 2, "init_std": 0.0}, "init_std"),
    ({"d": 3, "kernel": 2, "activation": "nope"}, "activation"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Conv1dSumPool(**kwargs)


def test_wrong_input_width_is_an_error():
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        Conv1dSumPool(4, 2)(_x(3, 5))


def test_input_subset_feeds_the_chosen_inputs():
    inner = nn.Linear(2, 1, dtype=torch.float64)
    model = InputSubset(inner, [3, 1])
    x = _x(4, 5)
    torch.testing.assert_close(model(x), inner(x[:, [3, 1]]))
    assert [n for n, _ in model.named_parameters()] == ["module.weight", "module.bias"]
    assert "indices" not in model.state_dict()
    with pytest.raises(ValueError, match="indices"):
        InputSubset(inner, [])
