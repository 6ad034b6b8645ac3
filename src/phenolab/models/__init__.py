"""Networks that own their parametrization and initialization, one registered kind each
(`phenolab.models.registry`): ``mlp``, ``conv``, ``matrix_factorization``."""

from phenolab.activations import get_activation
from phenolab.models.mlp import MLP, build_mlp
from phenolab.models.registry import ModelKind, build_model, model_kind, model_kinds, parameter_count, register_model

__all__ = ["MLP", "ModelKind", "build_mlp", "build_model", "get_activation", "model_kind", "model_kinds",
           "parameter_count", "register_model"]
