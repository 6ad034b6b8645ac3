"""scikit-learn's bundled 8x8 handwritten digits (1797 images, no download)."""

from __future__ import annotations

import torch

from phenolab.config import ConfigError, DigitsData, Problem
from phenolab.tasks.base import Task
from phenolab.tasks.registry import register_task

N_IMAGES = 1797
N_CLASSES = 10


def digits(spec: DigitsData, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Task:
    """x = pixels / 16 in [0, 1]^64, shuffled by `generator`; y one-hot (n, 10) or int64 labels (n,)."""
    problems = []
    if spec.n_train + spec.n_test > N_IMAGES:
        problems.append(
            Problem("data.n_train", f"n_train + n_test must be <= {N_IMAGES} (the digits set), "
                    f"got {spec.n_train} + {spec.n_test}")
        )
    if spec.noise > 0:
        problems.append(Problem("data.noise", "not supported for digits (must be 0)", spec.noise))
    if problems:
        raise ConfigError(problems)
    from sklearn.datasets import load_digits  # slow import, only when needed

    data = load_digits()
    order = torch.randperm(N_IMAGES, generator=generator)
    x = torch.as_tensor(data.data, dtype=torch.float64)[order] / 16.0
    labels = torch.as_tensor(data.target, dtype=torch.int64)[order]
    y = torch.nn.functional.one_hot(labels, N_CLASSES).to(dtype) if spec.one_hot else labels
    train = slice(0, spec.n_train)
    test = slice(spec.n_train, spec.n_train + spec.n_test)
    has_test = spec.n_test > 0
    return Task(
        x_train=x[train].to(dtype),
        y_train=y[train],
        x_test=x[test].to(dtype) if has_test else None,
        y_test=y[test] if has_test else None,
        kind="classification",
        name="digits",
        info={"n_classes": N_CLASSES, "input_dim": 64, "image_shape": (8, 8), "one_hot": spec.one_hot},
    )


register_task(DigitsData, digits)
