"""Model specs: `InitSpec` (initialization, as standard deviations) and `MLPSpec`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from phenolab.config.families import MODEL_KINDS, KindSpec, Spec
from phenolab.config.fields import (
    PARAMETRIZED_ACTIVATIONS,
    Activation,
    FiniteFloat,
    NonNegFloat,
    Parametrization,
    PosFloat,
    PosInt,
)


class InitSpec(Spec):
    """Initialization of the weights, as standard deviations (never variances).

    Exactly one of the following decides the std of each layer's raw weights:
    - ``std``: one value for every layer, or one value per layer (hidden layers, then output);
    - ``gamma``: std = m^-gamma with m the first hidden width; one value or one per layer;
    - neither: the parametrization's default (standard: 1/sqrt(fan_in); NTK and mean-field: 1).
    ``bias_std`` sets the biases' std (default: the same std as the layer's weights);
    ``antisymmetric`` duplicates the hidden units of a two-layer net with negated output weights
    so that the network output is exactly 0 at initialization (ASI, docs/specs/README.md).
    """

    std: float | list[float] | None = None
    gamma: float | list[float] | None = None
    bias_std: NonNegFloat | None = None
    antisymmetric: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> InitSpec:
        if self.std is not None and self.gamma is not None:
            raise ValueError("give either std or gamma, not both")
        stds = self.std if isinstance(self.std, list) else [self.std]
        if any(s is not None and not 0 < s < math.inf for s in stds):
            raise ValueError(f"std must be finite and > 0, got {self.std}")
        gammas = self.gamma if isinstance(self.gamma, list) else [self.gamma]
        if any(g is not None and not math.isfinite(g) for g in gammas):
            raise ValueError(f"gamma must be finite, got {self.gamma}")
        return self


@MODEL_KINDS.register
class MLPSpec(KindSpec):
    """A fully connected network: ``depth`` hidden layers of ``width`` units (or explicit ``widths``).

    A two-layer network, f(x) = sum_k a_k sigma(w_k . x + b_k), is depth 1. ``input_dim`` and
    ``output_dim`` default to the task's. ``output_scale`` multiplies the output (1/alpha in
    Luo et al.'s phase diagram, alpha in Chizat's lazy training).
    ``parametrization`` is one of standard, ntk, mean_field, mup (the per-layer table is in
    `phenolab.models.parametrization`). ``base_width`` (muP only, default None = 1): the width
    at which muP coincides with the standard parametrization; every hidden width enters muP's
    multipliers, initialization and per-layer learning rates as m / base_width (the mup
    package's base shape). It is left out of the canonical JSON while None, so configs without
    it keep their hash.

    Options of a committee machine (Kumar et al. 2023, arXiv:2310.06110: f(x) = (alpha/N)
    sum_i phi(w_i . x), readouts fixed to 1, trained as the centred predictor), each left out of
    the canonical JSON at its default so that older configs keep their hash:

    - ``activation_param``: the parameter of a parametrized activation (``quadratic``:
      sigma(h) = h + (c/2) h^2 with c = activation_param; None = its default, c = 1);
    - ``fixed_readout``: every output weight equals this value and is not trained (None, the
      default: the output layer is initialized and trained as usual; an output bias, if any, trains);
    - ``centered``: the network outputs f(x; theta) - f(x; theta_0), theta_0 its own initial
      parameters (kept as buffers), so f = 0 at initialization and the NTK is unchanged
      (Chizat, Oyallon & Bach 2019's centring; Kumar et al.'s centred predictor, App. 8.1).
    """

    kind: Literal["mlp"] = "mlp"
    width: PosInt | None = None  # default 100
    depth: PosInt | None = None  # default 1
    widths: list[PosInt] | None = None
    activation: Activation = "tanh"
    bias: bool = True
    output_bias: bool | None = None  # None = same as bias
    parametrization: Parametrization = "standard"
    init: InitSpec = InitSpec()
    output_scale: PosFloat = 1.0
    input_dim: PosInt | None = None
    output_dim: PosInt | None = None
    base_width: PosInt | None = Field(default=None, exclude_if=lambda v: v is None)
    activation_param: FiniteFloat | None = Field(default=None, exclude_if=lambda v: v is None)
    fixed_readout: FiniteFloat | None = Field(default=None, exclude_if=lambda v: v is None)
    centered: bool = Field(default=False, exclude_if=lambda v: not v)

    @property
    def hidden_widths(self) -> list[int]:
        if self.widths is not None:
            return list(self.widths)
        return [self.width or 100] * (self.depth or 1)

    @model_validator(mode="after")
    def _per_layer_lengths(self) -> MLPSpec:
        if self.widths is not None and (self.width is not None or self.depth is not None):
            raise ValueError(f"give either widths (now {self.widths}) or width/depth, not both; "
                             "e.g. model.widths=[200,200]")
        if not self.widths and self.widths is not None:
            raise ValueError("widths must list at least one hidden width")
        if self.base_width is not None and self.parametrization != "mup":
            raise ValueError(f"base_width is only used by parametrization=mup, got base_width={self.base_width} "
                             f"with parametrization={self.parametrization!r}")
        if self.activation_param is not None and self.activation not in PARAMETRIZED_ACTIVATIONS:
            raise ValueError(f"activation_param is only used by a parametrized activation "
                             f"({', '.join(PARAMETRIZED_ACTIVATIONS)}), got activation_param={self.activation_param} "
                             f"with activation={self.activation!r}")
        if self.fixed_readout is not None and self.init.antisymmetric:
            raise ValueError(f"fixed_readout sets every output weight to one value, init.antisymmetric negates "
                             f"half of them; give one of them, got fixed_readout={self.fixed_readout} with "
                             "init.antisymmetric=true")
        if self.init.antisymmetric and (len(self.hidden_widths) != 1 or self.hidden_widths[0] % 2):
            raise ValueError(f"init.antisymmetric needs a two-layer net (depth 1) of even width, "
                             f"got hidden widths {self.hidden_widths}")
        n_layers = len(self.hidden_widths) + 1
        for name in ("std", "gamma"):
            value = getattr(self.init, name)
            if isinstance(value, list) and len(value) != n_layers:
                raise ValueError(
                    f"init.{name} has {len(value)} values but the network has {n_layers} layers "
                    f"(hidden widths {self.hidden_widths} + output); give one value or {n_layers}"
                )
        return self
