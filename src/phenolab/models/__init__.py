"""Networks: fully connected nets that own their parametrization and initialization."""

from phenolab.activations import get_activation
from phenolab.models.mlp import MLP, build_model

__all__ = ["MLP", "build_model", "get_activation"]
