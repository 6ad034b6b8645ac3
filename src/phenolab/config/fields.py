"""Constrained field types shared by the specs (positive numbers, seeds, activation names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Seeds = Annotated[list[int], Field(min_length=1)]

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "sin", "xtanh", "x2tanh", "linear", "quadratic"]
PARAMETRIZED_ACTIVATIONS = ("quadratic",)  # activations that take model.activation_param
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Parametrization = Literal["standard", "ntk", "mean_field", "mup"]
