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


def test_quadratic_activation_takes_its_parameter():
    x = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    assert torch.equal(get_activation("quadratic")(x), x + 0.5 * x * x)  # default c = 1
    phi = get_activation("quadratic", 0.2)
    torch.testing.assert_close(phi(x), x + 0.1 * x**2)
    assert phi == get_activation("quadratic", 0.2) and phi != get_activation("quadratic", 0.3)
    assert multiplicity("quadratic") == 1
    import pickle

    assert pickle.loads(pickle.dumps(phi)) == phi  # networks holding it go to worker processes
    with pytest.raises(ValueError, match="takes no parameter"):
        get_activation("tanh", 0.2)
    with pytest.raises(ValueError, match="finite"):
        get_activation("quadratic", float("nan"))
