"""Typed specifications of a run, `key=value` overrides, canonical JSON and the config hash.

Every spec is a frozen pydantic v2 model that forbids unknown keys. Bad input raises
`ConfigError`, whose message names the dotted path, the value and what is allowed, e.g.
``model.width: must be > 0, got -3``.

Initialization convention (the group's material mixes variance and std, see
docs/specs/README.md): phenolab always speaks of the **standard deviation**. ``init.gamma = g``
means std = m^-g with m the first hidden width (the group's course code, `normal_(0, 1/m**g)`);
in the phase-diagram coordinates of Luo et al. (variance 1/m^gamma) that is gamma = 2 g.

Modules: `errors` (`Problem`, `ConfigError`), `families` (`Spec`, `KindSpec`, `SpecFamily` and the
model, data and objective families), `fields` (constrained field types), `model`, `data`,
`objectives`, `train` and `run` (the specs), `overrides` (``key=value`` overrides, YAML files,
`merge`), `validation` (`validate` and its one-line messages), `hashing` (`canonical_json`,
`config_hash`). Every public name is importable from ``phenolab.config``, which imports no torch.
"""

from __future__ import annotations

from phenolab.config.data import (
    CoordinateSinesData,
    DigitsData,
    ExpressionData,
    GaussianMixtureData,
    LinearTeacherData,
    ProductData,
    QuadraticTeacherData,
    RidgeData,
    SeededData,
    SinesData,
    TeacherData,
)
from phenolab.config.errors import MISSING, ConfigError, Problem
from phenolab.config.families import (
    DATA_KINDS,
    MODEL_KINDS,
    OBJECTIVE_KINDS,
    DataSpec,
    KindSpec,
    ModelSpec,
    ObjectiveSpec,
    Spec,
    SpecFamily,
    family_of,
)
from phenolab.config.fields import (
    PARAMETRIZED_ACTIVATIONS,
    Activation,
    FiniteFloat,
    NonNegFloat,
    Parametrization,
    PosFloat,
    PosInt,
    Seeds,
)
from phenolab.config.hashing import canonical_json, config_hash
from phenolab.config.model import InitSpec, MLPSpec
from phenolab.config.objectives import CrossEntropySpec, HalfMSESpec, MSESpec, TokenCrossEntropySpec
from phenolab.config.overrides import load_yaml, merge, parse_overrides, parse_value
from phenolab.config.run import ExperimentSpec, ProbeSpec, RunSpec
from phenolab.config.train import TrainSpec
from phenolab.config.validation import validate

__all__ = [
    "Activation",
    "ConfigError",
    "CoordinateSinesData",
    "CrossEntropySpec",
    "DATA_KINDS",
    "DataSpec",
    "DigitsData",
    "ExperimentSpec",
    "ExpressionData",
    "FiniteFloat",
    "GaussianMixtureData",
    "HalfMSESpec",
    "InitSpec",
    "KindSpec",
    "LinearTeacherData",
    "MISSING",
    "MLPSpec",
    "MODEL_KINDS",
    "MSESpec",
    "ModelSpec",
    "NonNegFloat",
    "OBJECTIVE_KINDS",
    "ObjectiveSpec",
    "PARAMETRIZED_ACTIVATIONS",
    "Parametrization",
    "PosFloat",
    "PosInt",
    "ProbeSpec",
    "Problem",
    "ProductData",
    "QuadraticTeacherData",
    "RidgeData",
    "RunSpec",
    "SeededData",
    "Seeds",
    "SinesData",
    "Spec",
    "SpecFamily",
    "TeacherData",
    "TokenCrossEntropySpec",
    "TrainSpec",
    "canonical_json",
    "config_hash",
    "family_of",
    "load_yaml",
    "merge",
    "parse_overrides",
    "parse_value",
    "validate",
]
