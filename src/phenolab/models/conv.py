"""A 1-D convolutional net with sum pooling, and a wrapper that wires a module to some inputs only.

They are the models of "costly expressiveness in connection" (Zhang et al., "Optimistic Estimate
Uncovers the Potential of Nonlinear Models", arXiv:2307.08921; docs/specs/recovery.md, OPT-3): a
neuron sigma(w . x) fully connected to d inputs has model rank d + 1, the same neuron wired only
to s inputs s + 1, and a convolution with kernel s (weights shared over the d - s + 1 shifts)
also s + 1 per channel, whatever d.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from phenolab.activations import get_activation
from phenolab.config import MODEL_KINDS, Activation, ConfigError, KindSpec, PosFloat, PosInt
from phenolab.models.registry import register_model


class Conv1dSumPool(nn.Module):
    """f(x) = sum_c a_c sum_{p=0}^{d-kernel} sigma(w_c . x[p : p+kernel] + b_c).

    One 1-D convolution (stride 1, no padding) with ``channels`` kernels w_c of length ``kernel``
    (and biases b_c if ``bias``), the activation, sum pooling over the d - kernel + 1 positions,
    then a linear readout a. Input x (n, d), output (n, 1). Parameters: ``weight``
    (channels, kernel), ``bias`` (channels,) when used, ``readout`` (channels,).

    Initialization: every entry N(0, init_std^2), drawn from `generator`; ``init_std=None`` uses
    1/sqrt(kernel) for weight and bias and 1/sqrt(channels) for the readout.
    """

    def __init__(self, d: int, kernel: int, channels: int = 1, activation: str = "tanh", bias: bool = False,
                 init_std: float | None = None, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        for name, value in (("d", d), ("kernel", kernel), ("channels", channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if kernel > d:
            raise ValueError(f"kernel: must be <= d = {d}, got {kernel}")
        if init_std is not None and not init_std > 0:
            raise ValueError(f"init_std: must be > 0 (or None for 1/sqrt(fan-in)), got {init_std!r}")
        self.d, self.kernel, self.channels, self.activation = d, kernel, channels, activation
        self.sigma = get_activation(activation)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        w_std = init_std if init_std is not None else 1 / math.sqrt(kernel)
        a_std = init_std if init_std is not None else 1 / math.sqrt(channels)

        def normal(shape: tuple[int, ...], std: float) -> nn.Parameter:  # drawn in float64 for every dtype
            return nn.Parameter((std * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype))

        self.weight = normal((channels, kernel), w_std)
        self.bias = normal((channels,), w_std) if bias else None
        self.readout = normal((channels,), a_std)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"Conv1dSumPool takes inputs (n, {self.d}), got shape {tuple(x.shape)}")
        patches = x.unfold(1, self.kernel, 1)  # (n, d - kernel + 1, kernel)
        h = patches @ self.weight.T  # (n, positions, channels)
        if self.bias is not None:
            h = h + self.bias
        return (self.sigma(h).sum(1) @ self.readout)[:, None]

    def extra_repr(self) -> str:
        return (f"d={self.d}, kernel={self.kernel}, channels={self.channels}, activation={self.activation!r}, "
                f"bias={self.bias is not None}")


class InputSubset(nn.Module):
    """module(x[:, indices]): `module` wired only to the inputs listed in ``indices``."""

    indices: Tensor  # a buffer
    module: nn.Module

    def __init__(self, module: nn.Module, indices: Sequence[int]) -> None:
        super().__init__()
        if not len(indices):
            raise ValueError("indices: must list at least one input")
        self.module = module
        self.register_buffer("indices", torch.as_tensor(list(indices), dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x[:, self.indices])

    def extra_repr(self) -> str:
        return f"indices={self.indices.tolist()}"


@MODEL_KINDS.register
class ConvSpec(KindSpec):
    """``model.kind: conv``: a `Conv1dSumPool` over the task's d inputs, one output.
    ``init_std`` None: 1/sqrt(kernel) for weight and bias, 1/sqrt(channels) for the readout."""

    kind: Literal["conv"] = "conv"
    kernel: PosInt = 3
    channels: PosInt = 1
    activation: Activation = "tanh"
    bias: bool = False
    init_std: PosFloat | None = None


def build_conv(spec: ConvSpec, input_dim: int, output_dim: int, generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> Conv1dSumPool:
    """The `Conv1dSumPool` of `spec`; ConfigError when the task does not fit it."""
    problems = []
    if output_dim != 1:
        problems.append(f"model.kind: conv has one output, the task has {output_dim}")
    if spec.kernel > input_dim:
        problems.append(f"model.kernel: must be <= the task's input_dim {input_dim}, got {spec.kernel}")
    if problems:
        raise ConfigError(problems)
    return Conv1dSumPool(input_dim, spec.kernel, spec.channels, spec.activation, spec.bias, spec.init_std,
                         generator, dtype)


register_model(ConvSpec, build_conv, stackable=True)
