"""Named activation sites (hook points in TransformerLens's style).

A model declares the capability by holding `HookPoint` submodules at the places whose activations
a probe may read: phenolab's `MLP` has ``hidden.{l}.hook_pre`` (pre-activation of hidden layer l)
and ``hidden.{l}.hook_post`` (its activation); a transformer will have e.g.
``blocks.{l}.attn.hook_pattern``. A hook point is the identity; `capture` records what passes
through the sites it is asked for during one forward pass. A model calls `fire(point, value)`,
which costs nothing while no hook is attached.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class HookPoint(nn.Module):
    """The identity at a named activation site; forward hooks attached to it see the activation."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def fire(point: HookPoint, value: Tensor) -> Tensor:
    """``point(value)`` when a hook is attached (so the hook sees it), else `value` untouched."""
    return point(value) if point._forward_hooks else value


def activation_sites(model: nn.Module) -> list[str]:
    """The names of the model's hook points, in registration order ([] for a model without any)."""
    return [name for name, module in model.named_modules() if isinstance(module, HookPoint)]


def capture(model: nn.Module, x: Tensor, sites: Sequence[str]) -> dict[str, Tensor]:
    """The activations at `sites` during ``model(x)`` (no gradient), detached, by site name.

    A name that is not a hook point of the model is a KeyError listing the model's sites."""
    known = set(activation_sites(model))
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise KeyError(f"{unknown} are not activation sites of {type(model).__name__}; "
                       f"its sites: {sorted(known) or 'none (it declares no hook points)'}")
    seen: dict[str, Tensor] = {}
    handles = []
    for name in sites:
        def keep(module: nn.Module, args: tuple, out: Tensor, name: str = name) -> None:
            seen[name] = out.detach()
        handles.append(model.get_submodule(name).register_forward_hook(keep))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen
