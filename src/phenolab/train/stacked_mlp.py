"""Loss and gradients of many MLPs of one shape at once: stacked parameters, batched matmuls, autograd.

The generic ensemble path, for any depth, activation, input dimension and loss. Member e's
parameters are row e of each stacked tensor (weights (E, out, in), biases (E, out)); layer l
computes h_l = mult_l (h_{l-1} W_l^T) + b_l as `MLP` does, the output is s_e h_{L+1} with the
member's output scale s_e, and the loss is the plain trainer's per member (`train.losses`):
MSE = mean over points and outputs of (f - y)^2, or the mean softmax cross-entropy.
Summing the members' losses makes one backward pass give every member its own gradient.
Frozen parameter tensors (``trainable`` False: a fixed readout) get no gradient. A centred
ensemble (``reference``: the members' stacked initial parameters) subtracts each member's
initial output s_e h_{L+1}(x; theta_0), computed once on the training inputs, as the centred
`MLP` does.

Members go through in chunks whose hidden activations (chunk x points x width) stay within a
cache-sized budget: one tensor of all members' activations falls out of the cache and runs
slower than the members one by one.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from phenolab.models.parametrization import BIAS_MULTIPLIER

_CHUNK_BYTES = 1 << 21  # hidden activations of one chunk of members (about the L2 cache)


class StackedMLP:
    """Per-member loss (E,) and gradients of stacked MLP parameters on one task's data.

    `multipliers` are the layers' forward multipliers (`parametrization.layer_multipliers`),
    `biases` whether each layer has a bias, `sigma` the activation, `widths` the hidden
    widths; targets `y` are (n, K) or integer labels (n,). `trainable` (default all True) marks
    the parameter tensors that get gradients. `reference` (stacked like the parameters) and
    `reference_scale` (one output scale per member) make the ensemble centred.
    """

    def __init__(self, x: Tensor, y: Tensor, *, widths: Sequence[int], multipliers: Sequence[float],
                 sigma: Callable[[Tensor], Tensor], biases: Sequence[bool], loss: str,
                 trainable: Sequence[bool] | None = None, reference: Sequence[Tensor] | None = None,
                 reference_scale: Sequence[float] | None = None) -> None:
        if loss not in ("mse", "cross_entropy"):
            raise ValueError(f"train.loss: must be one of mse, cross_entropy, got {loss!r}")
        self.x, self.y = x, y
        self.widths = list(widths)
        self.multipliers = [float(m) for m in multipliers]
        self.sigma = sigma
        self.biases = list(biases)
        self.loss_name = loss
        n_tensors = len(self.biases) + sum(self.biases)
        self.trainable = [True] * n_tensors if trainable is None else [bool(t) for t in trainable]
        if len(self.trainable) != n_tensors:
            raise ValueError(f"trainable: need one flag per parameter tensor ({n_tensors}), got {len(self.trainable)}")
        self.offset: Tensor | None = None  # (E, n, K): the members' initial outputs on x, centred ensembles
        if reference is not None:
            if reference_scale is None:
                raise ValueError("reference_scale: a centred ensemble needs the members' output scales")
            ref_scale = torch.tensor(list(reference_scale), dtype=torch.float64)
            with torch.no_grad():
                self.offset = torch.cat([self._forward([r[rows] for r in reference], ref_scale[rows], x)
                                         for rows in self._chunks(len(ref_scale), x.shape[0])])

    def select(self, keep: Tensor) -> None:
        """Keep the initial outputs of the members at `keep` (centred ensembles)."""
        if self.offset is not None:
            self.offset = self.offset[keep]

    def _chunks(self, E: int, points: int) -> list[slice]:
        """Member slices whose hidden activations stay within the cache-sized budget."""
        bytes_per_member = points * max(self.widths) * self.x.element_size() * 3
        chunk = max(1, _CHUNK_BYTES // bytes_per_member)
        return [slice(start, min(start + chunk, E)) for start in range(0, E, chunk)]

    def loss_and_grads(self, params: list[Tensor], scale: Tensor, batch: Tensor | None = None,
                       grads: list[Tensor] | None = None) -> Tensor:
        """Per-member loss (E,) in float64; with `grads` (buffers like the trainable params, in
        order), fill in the gradients.

        `scale` (E,) holds the output scales; `batch` (E, B) optional minibatch indices.
        """
        E = params[0].shape[0]
        points = self.x.shape[0] if batch is None else batch.shape[1]
        return torch.cat([self._chunk(params, scale, batch, grads, rows) for rows in self._chunks(E, points)])

    def _chunk(self, params: list[Tensor], scale: Tensor, batch: Tensor | None,
               grads: list[Tensor] | None, rows: slice) -> Tensor:
        with torch.enable_grad() if grads is not None else torch.no_grad():
            leaves = [p[rows].detach().requires_grad_(grads is not None and t) for p, t in zip(params, self.trainable)]
            if batch is None:
                x, y = self.x, self.y
            else:
                x, y = self.x[batch[rows]], self.y[batch[rows]]  # (E, B, d), (E, B, ...)
            out = self._forward(leaves, scale[rows], x)
            if self.offset is not None:
                offset = self.offset[rows]
                out = out - (offset if batch is None else
                             torch.gather(offset, 1, batch[rows][..., None].expand(-1, -1, offset.shape[2])))
            loss = self._loss(out, y)
            if grads is not None:
                trained = [leaf for leaf, t in zip(leaves, self.trainable) if t]
                for buf, g in zip(grads, torch.autograd.grad(loss.sum(), trained)):
                    buf[rows] = g
        return loss.detach().double()

    def _forward(self, leaves: list[Tensor], scale: Tensor, x: Tensor) -> Tensor:
        """(E, n, d) or shared (n, d) inputs -> outputs (E, n, K), layer by layer as `MLP.forward`."""
        n_layers = len(self.biases)
        h = x
        position = 0
        for layer, has_bias in enumerate(self.biases):
            W = leaves[position]
            h = self.multipliers[layer] * torch.matmul(h, W.transpose(1, 2))
            if has_bias:
                b = leaves[position + 1]
                h = h + (BIAS_MULTIPLIER * b if BIAS_MULTIPLIER != 1.0 else b)[:, None, :]
            position += 2 if has_bias else 1
            if layer < n_layers - 1:
                h = self.sigma(h)
        return scale.to(h.dtype)[:, None, None] * h

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        """The plain trainer's loss of each member: out (E, n, K), y (n, ...) or (E, n, ...)."""
        E, n, K = out.shape
        if self.loss_name == "mse":
            if not y.is_floating_point():
                y = F.one_hot(y, K).to(out.dtype)
            return ((out - y.reshape(-1, n, K)) ** 2).mean(dim=(1, 2))
        if y.is_floating_point():
            y = y.argmax(dim=-1)
        labels = y.reshape(-1, n).expand(E, n)
        return F.cross_entropy(out.transpose(1, 2), labels, reduction="none").mean(dim=1)
