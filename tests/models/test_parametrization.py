import math

import pytest

from phenolab.config import ConfigError, MLPSpec, validate
from phenolab.models.parametrization import bias_stds, layer_multipliers, layer_stds


def spec(**kw) -> MLPSpec:
    return validate(MLPSpec, kw)


def test_standard_defaults():
    s = spec(widths=[10, 20], parametrization="standard")
    assert layer_multipliers(s, 4) == [1.0, 1.0, 1.0]
    assert layer_stds(s, 4) == pytest.approx([1 / 2, 1 / math.sqrt(10), 1 / math.sqrt(20)])


def test_ntk_defaults():
    s = spec(widths=[16, 25], parametrization="ntk")
    assert layer_multipliers(s, 4) == pytest.approx([1 / 2, 1 / 4, 1 / 5])
    assert layer_stds(s, 4) == [1.0, 1.0, 1.0]


def test_mean_field_output_multiplier_is_one_over_width():
    s = spec(width=50, parametrization="mean_field")
    assert layer_multipliers(s, 9) == pytest.approx([1 / 3, 1 / 50])
    assert layer_stds(s, 9) == [1.0, 1.0]


def test_gamma_uses_first_hidden_width():
    s = spec(widths=[100, 7], init={"gamma": 0.5})
    assert layer_stds(s, 3) == pytest.approx([0.1, 0.1, 0.1])
    s = spec(widths=[100, 7], init={"gamma": [0.5, 1.0, 1.5]})
    assert layer_stds(s, 3) == pytest.approx([0.1, 0.01, 0.001])


def test_explicit_std_overrides_parametrization_but_not_multipliers():
    s = spec(width=64, parametrization="ntk", init={"std": [0.3, 0.2]})
    assert layer_stds(s, 1) == pytest.approx([0.3, 0.2])
    assert layer_multipliers(s, 1) == pytest.approx([1.0, 1 / 8])


def test_bias_std_default_and_override():
    s = spec(width=4, init={"std": [0.3, 0.2]})
    assert bias_stds(s, 1) == pytest.approx([0.3, 0.2])
    s = spec(width=4, init={"std": [0.3, 0.2], "bias_std": 0})
    assert bias_stds(s, 1) == [0.0, 0.0]


def test_per_layer_list_of_wrong_length_is_a_config_error():
    with pytest.raises(ConfigError, match="init.std"):
        spec(width=4, init={"std": [0.3, 0.2, 0.1]})
