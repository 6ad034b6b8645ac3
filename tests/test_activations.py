"""Activations by name and their multiplicity at the origin."""

import pytest
import torch

from phenolab.activations import get_activation, multiplicity


def test_new_activations_and_their_multiplicity_match_a_taylor_expansion():
    x = torch.tensor([1e-2], dtype=torch.float64)
    for name, p in (("tanh", 1), ("xtanh", 2), ("x2tanh", 3)):
        assert multiplicity(name) == p
        # sigma(x) ~ x^p near 0: the ratio sigma(x) / x^p tends to 1
        assert float(get_activation(name)(x) / x ** p) == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError, match="multiplicity"):
        multiplicity("relu")
    with pytest.raises(ValueError, match="allowed: relu"):
        get_activation("swish")
