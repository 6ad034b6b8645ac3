"""Set-up and block algebra shared by the NTK methods of `phenolab.probes.ntk`: the differentiated
parameters, the parameter point, inputs in the model's dtype, eval mode, and the contraction of
per-sample blocks into (n1, [k,] n2, [k]) kernels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn


def _trainable(model: nn.Module, params: Sequence[str] | None) -> list[str]:
    """Names of the differentiated parameters: ``params`` (checked) or all with requires_grad."""
    named = dict(model.named_parameters())
    if params is None:
        return [name for name, p in named.items() if p.requires_grad]
    if isinstance(params, str):
        raise TypeError(f"params must be a list of parameter names, got the string {params!r}")
    unknown = [name for name in params if name not in named]
    if unknown:
        raise KeyError(f"params names {unknown} are not parameters of the model; known: {sorted(named)}")
    if not params:
        raise ValueError("params must name at least one parameter")
    return list(dict.fromkeys(params))


def _values(model: nn.Module, point: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
    """Detached parameters and buffers of the model, replaced by ``point``'s entries."""
    values = {name: t.detach() for name, t in model.named_parameters()}
    values.update({name: t.detach() for name, t in model.named_buffers()})
    if point is None:
        return values
    unknown = [name for name in point if name not in values]
    if unknown:
        raise KeyError(f"point has entries {unknown} that the model lacks; give a dict like model.state_dict()")
    for name, tensor in point.items():
        live = values[name]
        values[name] = torch.as_tensor(tensor).detach().to(device=live.device, dtype=live.dtype)
    return values


def _inputs(model: nn.Module, x: Tensor | np.ndarray) -> Tensor:
    """x as a tensor in the dtype and on the device of the model's first floating parameter."""
    x = torch.as_tensor(x)
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return x.to(device=tensor.device, dtype=tensor.dtype) if x.is_floating_point() else x
    return x


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _readout(values: Tensor, outputs: str, axis: int) -> Tensor:
    """Output axis ``axis`` kept for trace/full, summed (kept as size 1) for "sum"."""
    return values.sum(axis, keepdim=True) if outputs == "sum" else values


def _contract(a: Tensor, b: Tensor, full: bool) -> Tensor:
    """a (n1, r, q), b (n2, r, q) -> sum_q a_irq b_jsq as (n1, r, n2, s) if ``full``, else its
    trace over r = s, sum_{r, q} a_irq b_jrq, as (n1, n2)."""
    n1, r, _ = a.shape
    n2 = b.shape[0]
    if full:
        return (a.reshape(n1 * r, -1) @ b.reshape(n2 * r, -1).T).reshape(n1, r, n2, r)
    return a.reshape(n1, -1) @ b.reshape(n2, -1).T


def _weighted(block: Tensor, gram: Tensor, full: bool) -> Tensor:
    """Elementwise product of a fresh (n1, [r,] n2, [r]) block with an (n1, n2) Gram matrix,
    in place."""
    return block.mul_(gram[:, None, :, None] if full else gram)


def _finish(block: Tensor, outputs: str) -> Tensor:
    """(n1, r, n2, r) or (n1, n2) block to the requested shape ("sum" has r = 1)."""
    if outputs == "sum" and block.ndim == 4:
        return block[:, 0, :, 0]
    return block
