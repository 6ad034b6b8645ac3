"""Infinite-width NTK and NNGP kernels of fully connected networks (Jacot et al. 2018,
arXiv:1806.07572; Lee et al. 2018, arXiv:1711.00165; Arora et al. 2019, arXiv:1904.11955).

Convention (NTK parametrization, Jacot et al.; neural-tangents' ``parameterization="ntk"``):
a network with ``depth`` hidden layers of widths n_1 .. n_depth -> infinity computes

    z_1 = (sigma_w / sqrt(d)) W_1 x + sigma_b b_1,
    z_{l+1} = (sigma_w / sqrt(n_l)) W_{l+1} phi(z_l) + sigma_b b_{l+1},   l = 1 .. depth,
    f(x) = z_{depth+1}  (one output; no activation on it),

with every raw W, b ~ N(0, 1) trained, ``weight_var`` = sigma_w^2, ``bias_var`` = sigma_b^2.
Then, with Sigma_l the covariance of z_l and (u, v) ~ N(0, [[Sigma_l(x,x), Sigma_l(x,x')], [., Sigma_l(x',x')]]),

    Sigma_1(x, x') = sigma_w^2 x . x' / d + sigma_b^2                  (first layer uses x . x' / d)
    Sigma_{l+1}    = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2
    Sigma'_{l+1}   = sigma_w^2 E[phi'(u) phi'(v)]
    Theta_1 = Sigma_1,   Theta_{l+1} = Sigma_{l+1} + Sigma'_{l+1} Theta_l  (elementwise),

and `analytic_ntk` returns (Theta_{depth+1}, Sigma_{depth+1}): the NTK and the NNGP kernel of
the output. (Jacot's L is the number of weight layers, L = depth + 1.)

Expectations in closed form, s1 = Sigma(x,x), s2 = Sigma(x',x'), s12 = Sigma(x,x'):

* ReLU, arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009; Arora et al. 2019), with
  theta = arccos(s12 / sqrt(s1 s2)):
  E[relu(u) relu(v)] = sqrt(s1 s2) (sin theta + (pi - theta) cos theta) / (2 pi),
  E[step(u) step(v)] = (pi - theta) / (2 pi).  Plain ReLU, no sqrt(2) gain: weight_var = 2
  gives the He-normalized kernels of Arora et al.
* erf (Williams 1997):
  E[erf(u) erf(v)] = (2/pi) arcsin(2 s12 / sqrt((1 + 2 s1)(1 + 2 s2))),
  E[erf'(u) erf'(v)] = (4/pi) / sqrt((1 + 2 s1)(1 + 2 s2) - 4 s12^2).

phenolab's `MLP` with ``parametrization="ntk"`` and its default initialization (raw std 1,
bias std 1, multipliers 1/sqrt(fan_in) and BIAS_MULTIPLIER = 1) is this network with
weight_var = 1 and bias_var = 1 (bias=True) or bias_var = 0 (bias=False); ``output_scale`` s
multiplies both kernels by s^2. Another raw ``init.std`` changes Sigma but not the gradient
scale, so it is not covered by this convention.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["analytic_ntk", "erf_expectations", "relu_expectations"]

Expectations = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def relu_expectations(s1: np.ndarray, s2: np.ndarray, s12: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E[relu(u) relu(v)], E[step(u) step(v)]) for a centred Gaussian pair with variances s1,
    s2 and covariance s12 (arc-cosine kernels of degree 1 and 0, Cho & Saul 2009)."""
    norm = np.sqrt(s1 * s2)
    cos = np.clip(np.divide(s12, norm, out=np.zeros_like(s12), where=norm > 0), -1.0, 1.0)
    theta = np.arccos(cos)
    value = norm * (np.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
    return value, (math.pi - theta) / (2 * math.pi)


def erf_expectations(s1: np.ndarray, s2: np.ndarray, s12: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E[erf(u) erf(v)], E[erf'(u) erf'(v)]) for a centred Gaussian pair (Williams 1997)."""
    product = (1 + 2 * s1) * (1 + 2 * s2)
    value = (2 / math.pi) * np.arcsin(np.clip(2 * s12 / np.sqrt(product), -1.0, 1.0))
    return value, (4 / math.pi) / np.sqrt(product - 4 * s12**2)


EXPECTATIONS: dict[str, Expectations] = {"relu": relu_expectations, "erf": erf_expectations}


def _array(x: Tensor | np.ndarray) -> np.ndarray:
    """float64 (n, d) numpy copy."""
    arr = x.detach().cpu().to(torch.float64).numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def analytic_ntk(
    x1: Tensor | np.ndarray,
    x2: Tensor | np.ndarray | None = None,
    depth: int = 1,
    activation: Literal["relu", "erf"] = "relu",
    weight_var: float = 1.0,
    bias_var: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(NTK Theta, NNGP Sigma) of the infinitely wide network with ``depth`` hidden layers in
    the NTK parametrization of the module docstring, both (n1, n2) float64 (x2 = x1 if None).

    weight_var = sigma_w^2 = 1 and bias_var = sigma_b^2 (1 with biases, 0 without) match
    phenolab's MLP(parametrization="ntk") at its default initialization.
    """
    if depth < 1:
        raise ValueError(f"depth (hidden layers) must be >= 1, got {depth}")
    if activation not in EXPECTATIONS:
        raise ValueError(f"activation must be one of {', '.join(EXPECTATIONS)}, got {activation!r}")
    expect = EXPECTATIONS[activation]
    a = _array(x1)
    b = a if x2 is None else _array(x2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x1 has {a.shape[1]} features but x2 has {b.shape[1]}")
    d = a.shape[1]
    # Sigma_1 on the pairs (x1, x2) and on the diagonals of x1 and of x2
    cross = weight_var * (a @ b.T) / d + bias_var
    diag1 = weight_var * np.sum(a * a, axis=1) / d + bias_var
    diag2 = weight_var * np.sum(b * b, axis=1) / d + bias_var
    ntk = cross.copy()
    for _ in range(depth):
        s1, s2 = diag1[:, None], diag2[None, :]
        value, slope = expect(np.broadcast_to(s1, cross.shape), np.broadcast_to(s2, cross.shape), cross)
        cross = weight_var * value + bias_var
        ntk = cross + weight_var * slope * ntk
        diag1 = weight_var * expect(diag1, diag1, diag1)[0] + bias_var
        diag2 = weight_var * expect(diag2, diag2, diag2)[0] + bias_var
    return ntk, cross
