"""Per-layer forward multipliers, initial standard deviations and learning-rate scales of a fully connected net.

Convention: layer l = 1..L+1 (L hidden layers, then the output layer) computes

    h_l = mult_l * (W_l h_{l-1}) + BIAS_MULTIPLIER * b_l,    raw W_l ~ N(0, std_l^2),

with h_0 = x, fan_in_l the width of h_{l-1} and m = the first hidden width. The optimizer
updates the raw W_l and b_l with learning rate lr * lr_scale (``train.lr`` times the scale).

    parametrization   mult_l (hidden)     mult_{L+1} (output)   default std_l      lr scales
    standard          1                   1                     1/sqrt(fan_in_l)   1
    ntk               1/sqrt(fan_in_l)    1/sqrt(fan_in_{L+1})  1                  1
    mean_field        1/sqrt(fan_in_l)    1/fan_in_{L+1} (1/m)  1                  1
    mup               see below

``init.std`` (one value or one per layer) or ``init.gamma`` (std_l = m^-gamma_l, one value
or one per layer) replaces the default raw std; the multipliers and learning-rate scales never
change. ``init.bias_std`` sets every bias's std; by default a bias has its layer's weight std
(muP: its own default, below).

muP: the maximal-update parametrization (Yang & Hu, Tensor Programs IV, arXiv:2011.14522;
Yang et al., Tensor Programs V, arXiv:2203.03466: Table 3 and its equivalent form with a 1/width
output multiplier, which the mup package implements as MuReadout + MuSGD/MuAdam). With
B = ``model.base_width`` (1 if unset), d = input_dim, m_l = hidden width l (m_0 = d) and width
ratios r_l = m_l / B (the finite dimensions d and output_dim count as ratio 1):

    layer           mult_l    std_l (raw W)     bias std     SGD/GD lr scale          Adam lr scale
                                                             weight        bias       weight     bias
    input (l=1)     1         1/sqrt(d)         1/sqrt(d)    r_1           r_1        1          1
    hidden (2..L)   1         1/sqrt(m_{l-1})   1/sqrt(B)    r_l/r_{l-1}   r_l        1/r_{l-1}  1
    output (L+1)    1/r_L     1/sqrt(B)         1/sqrt(B)    r_L           1          1          1

The hidden SGD scale r_l / r_{l-1} (fan_out over fan_in ratio, as MuSGD) is 1 for equal widths,
TP5 Table 3's eta; the bias stds are the mup package's rescaled SP biases, sqrt(fan_in ratio) /
sqrt(fan_in). At m_l = B (every ratio 1) this is the standard parametrization exactly. With
B = 1 it is the output-multiplier form in absolute widths: output multiplier 1/fan_in with init
variance 1, SGD learning rate eta * fan_out for input weights and biases and eta * fan_in for
output weights, Adam eta / fan_in for hidden weights.

In effective weights W_eff = mult * W (SGD lr on W_eff = mult^2 * lr scale, Adam lr on W_eff =
mult * lr scale) it is TP5's Table 3: init variance 1/fan_in (output 1/fan_in^2), SGD lr eta * n
(input, biases), eta (hidden), eta / n (output); Adam eta (input, biases), eta / n (hidden,
output). In Yang & Hu's abc-form (W = n^-a w, w ~ N(0, n^-2b), SGD lr eta n^-c) its width
exponents per layer (input, hidden, output) are a = (0, 0, 1), b = (0, 1/2, 0), c = (-1, 0, -1);
the symmetry (a + t, b - t, c - 2t), t = -1/2 for the input and output layers, maps them to
TP4's muP a = (-1/2, 0, 1/2), b = 1/2, c = 0.
"""

from __future__ import annotations

import math
from typing import Literal

from phenolab.config import MLPSpec

BIAS_MULTIPLIER = 1.0

OptimizerName = Literal["gd", "sgd", "adam"]


def fan_ins(spec: MLPSpec, input_dim: int) -> list[int]:
    """fan_in_l for l = 1..L+1: [input_dim, m_1, ..., m_L]."""
    return [input_dim, *spec.hidden_widths]


def base_width(spec: MLPSpec) -> int:
    """muP's base width B: ``model.base_width``, 1 if unset (absolute widths)."""
    return spec.base_width if spec.base_width is not None else 1


def width_ratios(spec: MLPSpec) -> list[float]:
    """muP's width ratios r_l = m_l / B of the hidden widths m_1..m_L."""
    base = base_width(spec)
    return [m / base for m in spec.hidden_widths]


def layer_multipliers(spec: MLPSpec, input_dim: int) -> list[float]:
    """mult_l of every layer (hidden layers, then output) for ``spec.parametrization``."""
    fans = fan_ins(spec, input_dim)
    if spec.parametrization == "standard":
        return [1.0] * len(fans)
    if spec.parametrization == "mup":  # 1 everywhere, output 1/r_L = B / m_L
        return [1.0] * (len(fans) - 1) + [1.0 / width_ratios(spec)[-1]]
    mults = [1.0 / math.sqrt(fan) for fan in fans]
    if spec.parametrization == "mean_field":
        mults[-1] = 1.0 / fans[-1]
    return mults


def layer_stds(spec: MLPSpec, input_dim: int) -> list[float]:
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
    if spec.parametrization == "mup":  # 1/sqrt(fan_in) except the output layer: 1/sqrt(B)
        return [1.0 / math.sqrt(fan) for fan in fans[:-1]] + [1.0 / math.sqrt(base_width(spec))]
    return [1.0] * n_layers


def bias_stds(spec: MLPSpec, input_dim: int) -> list[float]:
    """std of every layer's raw bias: init.bias_std if given (0 = zero biases), else std_l;
    muP without init.std or init.gamma: 1/sqrt(d) for the input layer, 1/sqrt(B) for the others
    (width-independent, as the standard parametrization's at m = B)."""
    stds = layer_stds(spec, input_dim)
    if spec.init.bias_std is not None:
        return [float(spec.init.bias_std)] * len(stds)
    if spec.parametrization == "mup" and spec.init.std is None and spec.init.gamma is None:
        return [1.0 / math.sqrt(input_dim)] + [1.0 / math.sqrt(base_width(spec))] * (len(stds) - 1)
    return stds


def lr_scales(spec: MLPSpec, input_dim: int, optimizer: OptimizerName) -> list[tuple[float, float]]:
    """(weight, bias) learning-rate scale of every layer (hidden layers, then output).

    1 for standard, ntk and mean_field. muP (table above, r_l = m_l / B):
    SGD/GD: input (r_1, r_1), hidden l (r_l / r_{l-1}, r_l), output (r_L, 1);
    Adam:   input (1, 1), hidden l (1 / r_{l-1}, 1), output (1, 1).
    """
    if optimizer not in ("gd", "sgd", "adam"):
        raise ValueError(f"train.optimizer: must be one of gd, sgd, adam, got {optimizer!r}")
    n_layers = len(fan_ins(spec, input_dim))
    if spec.parametrization != "mup":
        return [(1.0, 1.0)] * n_layers
    r = width_ratios(spec)
    if optimizer == "adam":
        return [(1.0, 1.0)] + [(1.0 / r[i - 1], 1.0) for i in range(1, n_layers - 1)] + [(1.0, 1.0)]
    return [(r[0], r[0])] + [(r[i] / r[i - 1], r[i]) for i in range(1, n_layers - 1)] + [(r[-1], 1.0)]


def _per_layer(value: float | list[float], n_layers: int) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)] * n_layers
