"""Objective specs: the registered ``train.loss`` kinds (`phenolab.objectives` implements them)."""

from __future__ import annotations

from typing import Literal

from phenolab.config.families import OBJECTIVE_KINDS, KindSpec


@OBJECTIVE_KINDS.register
class MSESpec(KindSpec):
    """``mse``: 1/(n k) sum (f - y)^2 over samples and outputs, no 1/2 (`phenolab.objectives`)."""

    kind: Literal["mse"] = "mse"


@OBJECTIVE_KINDS.register
class HalfMSESpec(KindSpec):
    """``half_mse``: 1/(2 n) sum_i ||f_i - y_i||^2, the theory papers' convention."""

    kind: Literal["half_mse"] = "half_mse"


@OBJECTIVE_KINDS.register
class CrossEntropySpec(KindSpec):
    """``cross_entropy``: mean softmax cross-entropy, classes on the output's last axis."""

    kind: Literal["cross_entropy"] = "cross_entropy"


@OBJECTIVE_KINDS.register
class TokenCrossEntropySpec(KindSpec):
    """``token_cross_entropy``: logits (n, T, V) against tokens (n, T); targets equal to
    ``ignore_index`` do not count; ``last_only`` scores the last position only."""

    kind: Literal["token_cross_entropy"] = "token_cross_entropy"
    ignore_index: int = -100
    last_only: bool = False
