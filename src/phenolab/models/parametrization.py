"""Per-layer forward multipliers and initial standard deviations of a fully connected net.

Convention: layer l = 1..L+1 (L hidden layers, then the output layer) computes

    h_l = mult_l * (W_l h_{l-1}) + BIAS_MULTIPLIER * b_l,    raw W_l ~ N(0, std_l^2),

with h_0 = x, fan_in_l the width of h_{l-1} and m = the first hidden width.

    parametrization   mult_l (hidden)     mult_{L+1} (output)   default std_l
    standard          1                   1                     1/sqrt(fan_in_l)
    ntk               1/sqrt(fan_in_l)    1/sqrt(fan_in_{L+1})  1
    mean_field        1/sqrt(fan_in_l)    1/fan_in_{L+1} (1/m)  1

``init.std`` (one value or one per layer) or ``init.gamma`` (std_l = m^-gamma_l, one value
or one per layer) replaces the default raw std; the multipliers never change.
``init.bias_std`` sets every bias's std; by default a bias has its layer's weight std.
"""

from __future__ import annotations

import math

from phenolab.config import ModelSpec

BIAS_MULTIPLIER = 1.0


def fan_ins(spec: ModelSpec, input_dim: int) -> list[int]:
    """fan_in_l for l = 1..L+1: [input_dim, m_1, ..., m_L]."""
    return [input_dim, *spec.hidden_widths]


def layer_multipliers(spec: ModelSpec, input_dim: int) -> list[float]:
    """mult_l of every layer (hidden layers, then output) for ``spec.parametrization``."""
    fans = fan_ins(spec, input_dim)
    if spec.parametrization == "standard":
        return [1.0] * len(fans)
    mults = [1.0 / math.sqrt(fan) for fan in fans]
    if spec.parametrization == "mean_field":
        mults[-1] = 1.0 / fans[-1]
    return mults


def layer_stds(spec: ModelSpec, input_dim: int) -> list[float]:
    """std_l of every layer's raw weights: init.std, else m^-init.gamma, else the default."""
    fans = fan_ins(spec, input_dim)
    n_layers = len(fans)
    init = spec.init
    if init.std is not None:
        return _per_layer(init.std, n_layers)
    if init.gamma is not None:
        m = spec.hidden_widths[0]
        return [float(m) ** -g for g in _per_layer(init.gamma, n_layers)]
    if spec.parametrization == "standard":
        return [1.0 / math.sqrt(fan) for fan in fans]
    return [1.0] * n_layers


def bias_stds(spec: ModelSpec, input_dim: int) -> list[float]:
    """std of every layer's raw bias: init.bias_std if given (0 = zero biases), else std_l."""
    stds = layer_stds(spec, input_dim)
    if spec.init.bias_std is not None:
        return [float(spec.init.bias_std)] * len(stds)
    return stds


def _per_layer(value: float | list[float], n_layers: int) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)] * n_layers
