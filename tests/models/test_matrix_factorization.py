"""The matrix factorization module: entries of the product, gradients to every factor."""

import pytest
import torch
from torch.func import functional_call

from phenolab.models.matrix_factorization import MatrixFactorization, all_positions


def test_outputs_are_the_entries_of_the_product():
    mf = MatrixFactorization(3, 5, depth=3, width=2, init_std=0.7)
    assert [tuple(p.shape) for p in mf.factors] == [(3, 2), (2, 2), (2, 5)]
    w = mf.factors[0] @ mf.factors[1] @ mf.factors[2]
    assert torch.allclose(mf.matrix(), w)
    assert torch.allclose(mf(all_positions(3, 5)).reshape(3, 5), w)


def test_gradients_reach_every_factor_under_functional_call():
    """Regression: slicing the ParameterList in matrix() copied the later factors and cut the graph."""
    mf = MatrixFactorization(2, 2, depth=3, init_std=1.0)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in mf.named_parameters()}
    out = functional_call(mf, params, (all_positions(2, 2),)).sum()
    grads = torch.autograd.grad(out, list(params.values()))
    assert all(g.abs().sum() > 0 for g in grads)


def test_depth_one_is_the_matrix_itself_and_bad_sizes_are_named():
    assert [tuple(p.shape) for p in MatrixFactorization(3, 4, depth=1).factors] == [(3, 4)]
    with pytest.raises(ValueError, match="depth: must be an integer >= 1"):
        MatrixFactorization(3, 3, depth=0)
    with pytest.raises(ValueError, match="init_std: must be > 0"):
        MatrixFactorization(3, 3, init_std=0.0)
    with pytest.raises(ValueError, match=r"\(n, 2\) entry positions"):
        MatrixFactorization(3, 3)(torch.zeros(4, 3))
