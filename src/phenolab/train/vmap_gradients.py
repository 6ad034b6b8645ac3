"""The generic gradient path of the ensemble: any stackable module, any objective on outputs.

The members' parameters are stacked on a leading axis; one call of
``vmap(grad_and_value(member_loss))`` gives every member's loss and gradient, where
``member_loss(theta, x, y) = objective.on_outputs(functional_call(model, theta, x), y)`` on the
member's minibatch. It is what `torch.func` makes of the plain loop's step for each member, so a
member follows the plain trainer's numbers up to floating-point rounding. Buffers (e.g. a centred
net's initial parameters) are taken from each member's own model and stacked too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from phenolab.objectives import Objective


class VmapGradients:
    """`loss_and_grads` of the ensemble's `_Stack` for members that share one module class."""

    def __init__(self, models: Sequence[nn.Module], objective: Objective, x: Tensor, y: Tensor,
                 names: Sequence[str], trainable: Sequence[bool], device: torch.device) -> None:
        if not objective.outputs_only:
            raise ValueError(f"the ensemble's generic path needs an objective on outputs; {objective.name} "
                             "needs the model (train it with train.engine=plain)")
        self.model = models[0]
        self.objective = objective
        self.x, self.y = x.to(device), y.to(device)
        self.names = list(names)
        self.trainable = list(trainable)
        buffer_names = [name for name, _ in self.model.named_buffers()]
        self.buffers = {name: torch.stack([dict(m.named_buffers())[name].detach() for m in models]).to(device)
                        for name in buffer_names}
        model = self.model

        def member_loss(theta: dict[str, Tensor], rest: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return objective.on_outputs(functional_call(model, {**theta, **rest}, (x,)), y)

        # built once: full batch (data shared by all members) and minibatch (each member its own rows)
        self._loss = {None: vmap(member_loss, in_dims=(0, 0, None, None)), 0: vmap(member_loss, in_dims=(0, 0, 0, 0))}
        self._grad = {d: vmap(grad_and_value(member_loss), in_dims=(0, 0, d, d)) for d in (None, 0)}
        self._trained_names = [n for n, t in zip(self.names, self.trainable) if t]

    def select(self, keep: Tensor) -> None:
        """Keep the buffers of the members at `keep` (the stack dropped the others)."""
        self.buffers = {name: b[keep.to(b.device)] for name, b in self.buffers.items()}

    def loss_and_grads(self, params: list[Tensor], scale: Tensor, batch: Tensor | None = None,
                       grads: list[Tensor] | None = None) -> Tensor:
        """Per-member loss (E,) in float64; with `grads` (buffers like the trained params, in order)
        fill in the gradients. `scale` is unused (the module applies its own output scale);
        `batch` (E, B) holds each member's minibatch indices, or None for the full batch."""
        trained = {n: p for n, p, t in zip(self.names, params, self.trainable) if t}
        rest = {**{n: p for n, p, t in zip(self.names, params, self.trainable) if not t}, **self.buffers}
        dims, x, y = (None, self.x, self.y) if batch is None else (0, self.x[batch], self.y[batch])
        if grads is None:
            with torch.no_grad():
                return self._loss[dims](trained, rest, x, y).detach().double()
        g, loss = self._grad[dims](trained, rest, x, y)
        for buffer, name in zip(grads, self._trained_names):
            buffer.copy_(g[name])
        return loss.detach().double()
