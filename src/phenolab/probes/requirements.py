"""What a probe needs of the model and the task, declared at registration and checked up front.

``register_probe(name, requires=(TWO_LAYER,))``: `check_requirements` runs each requirement on the
first built model and task of an experiment before anything is stored, so that a probe that cannot
read the model (a condensation probe on a convolutional net, accuracy on a regression task) is bad
input with a reason, not an exception at step 0 after the runs exist. Requirements are read from
what a model declares or from its structure, never from its type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from phenolab.probes.neurons import _two_layer_problem, linear_layers
from phenolab.tasks.base import Task


@dataclass(frozen=True)
class Requirement:
    """A named condition on (model, task): `problem` returns why it fails, or None."""

    name: str
    problem: Callable[[nn.Module, Task], str | None]


def _input_layer(model: nn.Module, task: Task) -> str | None:
    return None if linear_layers(model) else f"{type(model).__name__} has no nn.Linear input layer"


def _class_targets(model: nn.Module, task: Task) -> str | None:
    return None if task.kind == "classification" else f"task {task.name!r} is {task.kind}"


TWO_LAYER = Requirement("a two-layer network (input layer, activation, output layer)",
                        lambda model, task: _two_layer_problem(model))
INPUT_LAYER = Requirement("an nn.Linear input layer (its neurons)", _input_layer)
CLASS_TARGETS = Requirement("a classification task", _class_targets)
