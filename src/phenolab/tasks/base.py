"""The `Task`: training and test tensors plus what the probes need to know about the target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch


@dataclass(frozen=True)
class Task:
    """Data of one run.

    ``x_train`` is (n, d) and ``y_train`` is (n, k) for regression (k outputs) or (n,) integer
    labels for classification. For 1-D tasks sampled on a uniform grid, ``grid`` is True and
    the training inputs are sorted, so a DFT over them is meaningful. ``target`` evaluates the
    noiseless target function on new inputs (None for real data). ``info`` holds anything a
    probe or an experiment may want (frequencies, amplitudes, class count, ...). ``sample(n,
    generator)`` draws n fresh inputs (n, d) from the training inputs' distribution, in the
    task's dtype, for Monte-Carlo estimates of the population loss (None where the task has no
    such distribution, e.g. a grid or real data).

    What a task declares for trainers, objectives and probes: ``kind`` is the target kind
    (``regression``: real targets (n, k); ``classification``: class labels (n,) or one-hot rows;
    ``tokens``: token targets (n, T) over a vocabulary of ``vocab`` tokens, the model's output
    (n, T, vocab)); ``input_shape`` is one input's shape; ``points`` holds named extra point sets
    that an objective may use besides the training batch (a PDE's boundary points).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    kind: Literal["regression", "classification", "tokens"] = "regression"
    grid: bool = False
    target: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, compare=False)
    name: str = "task"
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    sample: Callable[[int, torch.Generator], torch.Tensor] | None = field(default=None, compare=False)
    vocab: int | None = None
    points: Mapping[str, torch.Tensor] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "tokens" and (self.vocab is None or self.y_train.ndim != 2):
            raise ValueError(f"task {self.name!r}: token targets need a vocab and targets (n, T), got vocab="
                             f"{self.vocab} and targets of shape {tuple(self.y_train.shape)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: (d,) for vectors, (T,) for token sequences."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def output_dim(self) -> int:
        """Outputs per input: k for regression, the class count, or the vocabulary per position."""
        if self.kind == "tokens":
            return int(self.vocab)  # type: ignore[arg-type]
        if self.kind == "classification" and self.y_train.ndim == 1:
            return int(self.info.get("n_classes", int(self.y_train.max()) + 1))
        return int(self.y_train.shape[1])

    @classmethod
    def from_batch(cls, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> Task:
        """Wrap a user's (x, y) batch; 1-D inputs and targets get a trailing axis."""
        x = x if x.ndim > 1 else x[:, None]
        if y.is_floating_point() and y.ndim == 1:
            y = y[:, None]
        kind = "regression" if y.is_floating_point() else "classification"
        return cls(x_train=x, y_train=y, kind=kwargs.pop("kind", kind), name=kwargs.pop("name", "batch"), **kwargs)
