"""A fully connected network with its parametrization and initialization built in.

Layer l computes h_l = mult_l * (W_l h_{l-1}) + b_l (see `parametrization`); hidden layers
apply the activation, and the network output is output_scale * h_{L+1}. A depth-1 net is the
two-layer network f(x) = sum_k a_k sigma(w_k . x + b_k). The parametrization's per-layer
learning-rate scales (muP's) reach the optimizer through `MLP.param_groups`.

Committee-machine options (`MLPSpec`): ``activation_param`` (the quadratic activation's c);
``fixed_readout = v``: the output weights are all v and frozen (``requires_grad`` False, left out
of `MLP.param_groups`); ``centered``: the output is f(x; theta) - f(x; theta_0), with theta_0 the
initial parameters kept as buffers ``reference.weight_{l}`` / ``reference.bias_{l}``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init

from phenolab.activations import get_activation
from phenolab.config import ConfigError, MLPSpec, Problem
from phenolab.models.chain import Affine, Elementwise, Op, Scale
from phenolab.models.hooks import HookPoint, fire
from phenolab.models.parametrization import (
    BIAS_MULTIPLIER,
    OptimizerName,
    bias_stds,
    layer_multipliers,
    layer_stds,
    lr_scales,
)
from phenolab.models.registry import register_model


class MLP(nn.Module):
    """x (n, d) -> f(x) (n, output_dim); parameters ``layers.{l}.weight`` / ``layers.{l}.bias``."""

    def __init__(
        self,
        spec: MLPSpec,
        input_dim: int,
        output_dim: int,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if spec.init.antisymmetric:
            _check_antisymmetric(spec)
        self.spec = spec
        widths = [input_dim, *spec.hidden_widths, output_dim]
        biases = [spec.bias] * len(spec.hidden_widths) + [spec.bias if spec.output_bias is None else spec.output_bias]
        # skip_init: allocate without nn.Linear's default init, which would draw from the global RNG
        # typed as the list of its nn.Linear layers (an nn.ModuleList is a Module to mypy)
        self.layers: list[nn.Linear] = nn.ModuleList(  # type: ignore[assignment]
            skip_init(nn.Linear, n_in, n_out, bias=bias, dtype=dtype)
            for n_in, n_out, bias in zip(widths[:-1], widths[1:], biases)
        )
        self.hidden: list[_Sites] = nn.ModuleList(_Sites() for _ in spec.hidden_widths)  # type: ignore[assignment]
        self.sigma = get_activation(spec.activation, spec.activation_param)
        self.multipliers = layer_multipliers(spec, input_dim)
        self.output_scale = float(spec.output_scale)
        self._init_weights(generator)
        if spec.fixed_readout is not None:
            self.layers[-1].weight.requires_grad_(False)
        self.reference: nn.Module | None = None
        if spec.centered:
            self.reference = nn.Module()
            for i, layer in enumerate(self.layers):
                self.reference.register_buffer(f"weight_{i}", layer.weight.detach().clone())
                if layer.bias is not None:
                    self.reference.register_buffer(f"bias_{i}", layer.bias.detach().clone())

    @torch.no_grad()
    def _init_weights(self, generator: torch.Generator) -> None:
        """W_l ~ N(0, std_l^2), b_l ~ N(0, bias_std_l^2); then the antisymmetric copy if asked.

        Antisymmetric (m units): w_{k+m/2} = w_k, b_{k+m/2} = b_k, a_{k+m/2} = -a_k, output bias 0,
        so f = 0 exactly in exact arithmetic (rounding-level, ~1e-7 relative, in floating point).
        ``fixed_readout = v``: every output weight is v.
        """
        input_dim = self.layers[0].in_features
        stds = layer_stds(self.spec, input_dim)
        b_stds = bias_stds(self.spec, input_dim)
        for layer, std, b_std in zip(self.layers, stds, b_stds):
            layer.weight.copy_(_normal(layer.weight.shape, std, generator))
            if layer.bias is not None:
                layer.bias.copy_(_normal(layer.bias.shape, b_std, generator))
        if self.spec.init.antisymmetric:
            hidden, out = self.layers
            half = hidden.out_features // 2
            hidden.weight[half:] = hidden.weight[:half]
            out.weight[:, half:] = -out.weight[:, :half]
            if hidden.bias is not None:
                hidden.bias[half:] = hidden.bias[:half]
            if out.bias is not None:
                out.bias.zero_()  # otherwise f(x) = b_out at init, not 0
        if self.spec.fixed_readout is not None:
            self.layers[-1].weight.fill_(self.spec.fixed_readout)

    def forward(self, x: Tensor) -> Tensor:
        f = self._output(x, self._live(), sites=True)
        return f if self.reference is None else f - self._output(x, self.initial_parameters())

    def _live(self) -> list[tuple[Tensor, Tensor | None]]:
        return [(layer.weight, layer.bias) for layer in self.layers]

    def initial_parameters(self) -> list[tuple[Tensor, Tensor | None]]:
        """The initial (weight, bias) of every layer of a centred net (its reference buffers; bias
        None for a layer without one). ValueError for a net that is not centred."""
        ref = self.reference
        if ref is None:
            raise ValueError("initial_parameters: this network is not centred (model.centered=false)")
        return [(getattr(ref, f"weight_{i}"), getattr(ref, f"bias_{i}", None)) for i in range(len(self.layers))]

    def _output(self, x: Tensor, params: list[tuple[Tensor, Tensor | None]], sites: bool = False) -> Tensor:
        """output_scale * h_{L+1} of the uncentred net with the given (weight, bias) per layer;
        with `sites`, the activations pass the hook points ``hidden.{l}.hook_pre/hook_post``."""
        *hidden, out = params
        for i, ((weight, bias), mult) in enumerate(zip(hidden, self.multipliers)):
            z = _affine_with(weight, bias, mult, x)
            if sites:
                z = fire(self.hidden[i].hook_pre, z)
            x = self.sigma(z)
            if sites:
                x = fire(self.hidden[i].hook_post, x)
        return self.output_scale * _affine_with(*out, self.multipliers[-1], x)

    def preactivations(self, x: Tensor) -> list[Tensor]:
        """[h_1, ..., h_L, f]: every hidden layer's pre-activation mult_l (W_l h_{l-1}) + b_l, then
        the network output f = output_scale * h_{L+1} (minus its value at theta_0 for a centred
        net), computed as `forward` computes them."""
        *hidden, out = self.layers
        values = []
        z = x
        for layer, mult in zip(hidden, self.multipliers):
            h = _affine(layer, mult, z)
            values.append(h)
            z = self.sigma(h)
        f = self.output_scale * _affine(out, self.multipliers[-1], z)
        values.append(f if self.reference is None else f - self._output(x, self.initial_parameters()))
        return values

    def layer_chain(self) -> list[Op]:
        """The network as a chain (capability `phenolab.models.chain`): layer l is
        Affine(mult_l, BIAS_MULTIPLIER), each hidden layer followed by the activation, the output
        by Scale(output_scale) when it is not 1. A centred net's reference output is a constant in
        the parameters and is left out."""
        ops: list[Op] = []
        last = len(self.layers) - 1
        for index, (layer, mult) in enumerate(zip(self.layers, self.multipliers)):
            ops.append(Affine(f"layers.{index}", float(mult), BIAS_MULTIPLIER, layer.bias is not None))
            if index < last:
                ops.append(Elementwise(self.sigma))
        if self.output_scale != 1.0:
            ops.append(Scale(self.output_scale))
        return ops

    def lr_scales(self, optimizer: OptimizerName) -> dict[str, float]:
        """Learning-rate scale of every parameter by name (`parametrization.lr_scales`):
        muP's per-layer factors, 1 for the other parametrizations."""
        scales = lr_scales(self.spec, self.layers[0].in_features, optimizer)
        out: dict[str, float] = {}
        for i, (layer, (w_scale, b_scale)) in enumerate(zip(self.layers, scales)):
            out[f"layers.{i}.weight"] = w_scale
            if layer.bias is not None:
                out[f"layers.{i}.bias"] = b_scale
        return out

    def param_groups(self, lr: float, optimizer: OptimizerName) -> list[dict[str, Any]]:
        """torch.optim parameter groups with learning rate lr * scale; parameters of equal scale
        share a group (in registration order), so a net without per-layer scales is one group.
        Frozen parameters (``requires_grad`` False: a fixed readout) are left out."""
        scales = self.lr_scales(optimizer)
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups.setdefault(scales[name], []).append(p)
        return [{"params": params, "lr": lr * scale} for scale, params in groups.items()]

    def neurons(self) -> tuple[Tensor, Tensor | None, Tensor]:
        """Effective (w, b, a) of a two-layer net, detached: f(x) = sum_k a_k sigma(w_k . x + b_k) + c.

        w = mult_1 W_1 (m, d); b = b_1 (m,) or None without biases;
        a = output_scale * mult_2 W_2^T (m, out); c = output_scale * b_2 (not returned).
        A centred net (``model.centered``) outputs that minus its value at the initial parameters.
        """
        if len(self.layers) != 2:
            raise ValueError(f"neurons() needs a two-layer net (depth 1), this one has {len(self.layers) - 1} "
                             "hidden layers")
        hidden, out = self.layers
        w = self.multipliers[0] * hidden.weight.detach()
        b = BIAS_MULTIPLIER * hidden.bias.detach() if hidden.bias is not None else None
        a = self.output_scale * self.multipliers[1] * out.weight.detach().T
        return w, b, a

    def extra_repr(self) -> str:
        extra = "".join(f", {name}={value}" for name, value in (
            ("activation_param", self.spec.activation_param), ("fixed_readout", self.spec.fixed_readout),
            ("centered", self.spec.centered or None)) if value is not None)
        return f"parametrization={self.spec.parametrization}, output_scale={self.output_scale}{extra}"


class _Sites(nn.Module):
    """The activation sites of one hidden layer: pre-activation and activation."""

    def __init__(self) -> None:
        super().__init__()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()


def _affine(layer: nn.Linear, mult: float, x: Tensor) -> Tensor:
    """mult * (W x) + BIAS_MULTIPLIER * b."""
    return _affine_with(layer.weight, layer.bias, mult, x)


def _affine_with(weight: Tensor, bias: Tensor | None, mult: float, x: Tensor) -> Tensor:
    """mult * (W x) + BIAS_MULTIPLIER * b for the given weight and bias (None: no bias); a factor
    1 is skipped (multiplying by 1.0 is exact, so the result is the same, one pass cheaper)."""
    h = F.linear(x, weight)
    if mult != 1.0:
        h = mult * h
    if bias is None:
        return h
    return h + (BIAS_MULTIPLIER * bias if BIAS_MULTIPLIER != 1.0 else bias)


def _normal(shape: torch.Size, std: float, generator: torch.Generator) -> Tensor:
    """N(0, std^2) samples, drawn in float64 so float32 and float64 nets start from the same weights."""
    return std * torch.randn(shape, generator=generator, dtype=torch.float64)


def _check_antisymmetric(spec: MLPSpec) -> None:
    widths = spec.hidden_widths
    if len(widths) != 1:
        raise ConfigError([Problem("model.init.antisymmetric",
                                   f"needs a two-layer net (depth 1), got hidden widths {widths}")])
    if widths[0] % 2:
        raise ConfigError([Problem("model.init.antisymmetric", f"needs an even width, got model.width={widths[0]}")])


def build_mlp(
    spec: MLPSpec,
    input_dim: int,
    output_dim: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> MLP:
    """The MLP of `spec` for a task with `input_dim` inputs and `output_dim` outputs."""
    problems = [
        Problem(f"model.{name}", f"must match the task's {name} {task_value}", spec_value)
        for name, spec_value, task_value in (
            ("input_dim", spec.input_dim, input_dim),
            ("output_dim", spec.output_dim, output_dim),
        )
        if spec_value is not None and spec_value != task_value
    ]
    if problems:
        raise ConfigError(problems)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    return MLP(spec, input_dim, output_dim, generator, dtype)


register_model(MLPSpec, build_mlp, stackable=True)
