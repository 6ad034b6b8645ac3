"""Learning-rate schedules and the device of a run, shared by every torch trainer.

The learning rate at step t (0-based) is lr * factor(t): with ``warmup = w`` steps,
factor = (t + 1) / w for t < w (linear warm-up); then ``constant``: 1, or ``cosine``:
(1 + cos(pi (t - w) / (T - w))) / 2 over the remaining T - w steps (T = train.steps), reaching
0 after the last step.
"""

from __future__ import annotations

import math

import torch

from phenolab.config import TrainSpec


def scheduled(spec: TrainSpec) -> bool:
    """Whether the run's learning rate changes over the steps (warm-up or a decay)."""
    return spec.warmup > 0 or spec.schedule != "constant"


def lr_factor(spec: TrainSpec, step: int) -> float:
    """factor(step) of the module docstring; 1 for a constant schedule without warm-up."""
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    if spec.schedule == "cosine":
        span = max(spec.steps - spec.warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - spec.warmup, span) / span))
    return 1.0


def device_of(spec: TrainSpec) -> torch.device:
    """The run's device: ``cpu``, ``cuda`` (an error without one), or ``auto`` (cuda when there is one)."""
    if spec.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device: cuda was asked for, but torch sees no CUDA device; use cpu or auto")
    return torch.device(spec.device)
