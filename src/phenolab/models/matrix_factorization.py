"""Matrix factorization W = U_1 U_2 ... U_L as a network whose inputs are entry positions.

Matrix completion (Bai, Zhao & Zhang 2024, arXiv:2405.13721; the model-rank papers 2211.11623
and 2307.08921) trains the factors of W (d_1 x d_2) on the observed entries M*_ij. So that the
probes, which take any ``nn.Module`` mapping (n, k) inputs to (n, 1) outputs, apply unchanged,
the module's input is a batch of positions x = (i, j) (float or integer, one row each) and its
output is W_ij. With L = 2 and full width the model rank of a rank-r target is
r (d_1 + d_2 - r) (2 d r - r^2 for d x d).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from phenolab.config import MODEL_KINDS, ConfigError, KindSpec, PosFloat, PosInt
from phenolab.models.registry import register_model


class MatrixFactorization(nn.Module):
    """W = U_1 @ ... @ U_L with U_1 (d_1, k), middle factors (k, k), U_L (k, d_2).

    ``width`` k defaults to min(d_1, d_2) ("full width"); ``depth`` L >= 1 (L = 1: W itself, the
    linear model). Every entry of every factor is N(0, init_std^2), drawn from `generator`.
    Parameters are ``factors.0`` ... ``factors.{L-1}``; `matrix()` is the product.
    """

    def __init__(self, d1: int, d2: int, *, width: int | None = None, depth: int = 2, init_std: float = 1e-3,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        for name, value in (("d1", d1), ("d2", d2), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        k = min(d1, d2) if width is None else width
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"width: must be an integer >= 1, got {width!r}")
        if not init_std > 0:
            raise ValueError(f"init_std: must be > 0, got {init_std!r}")
        shapes = [(d1, d2)] if depth == 1 else [(d1, k), *[(k, k)] * (depth - 2), (k, d2)]
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.d1, self.d2, self.width, self.depth = d1, d2, k, depth
        self.factors = nn.ParameterList(
            nn.Parameter((init_std * torch.randn(s, generator=gen, dtype=torch.float64)).to(dtype)) for s in shapes)

    def matrix(self) -> Tensor:
        """The product W (d_1, d_2)."""
        w = self.factors[0]
        for u in list(self.factors)[1:]:  # slicing a ParameterList would copy (and detach) its entries
            w = w @ u
        return w

    def forward(self, x: Tensor) -> Tensor:
        """x (n, 2) positions (row, column) -> (n, 1) entries W[row, column]."""
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"MatrixFactorization takes (n, 2) entry positions, got shape {tuple(x.shape)}")
        idx = x.round().long() if x.is_floating_point() else x.long()
        return self.matrix()[idx[:, 0], idx[:, 1]][:, None]

    def extra_repr(self) -> str:
        return f"d1={self.d1}, d2={self.d2}, width={self.width}, depth={self.depth}"


def all_positions(d1: int, d2: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Every entry position (i, j) of a d_1 x d_2 matrix, row-major: the (d_1 d_2, 2) input that
    makes a `MatrixFactorization`'s output the whole matrix (the "population" of positions)."""
    i, j = torch.meshgrid(torch.arange(d1), torch.arange(d2), indexing="ij")
    return torch.stack([i.reshape(-1), j.reshape(-1)], dim=1).to(dtype)


@MODEL_KINDS.register
class MatrixFactorizationSpec(KindSpec):
    """``model.kind: matrix_factorization``: W = U_1 ... U_L of shape ``rows`` x ``cols`` on entry
    positions (inputs (n, 2), one output); ``width`` None is full width min(rows, cols)."""

    kind: Literal["matrix_factorization"] = "matrix_factorization"
    rows: PosInt
    cols: PosInt
    width: PosInt | None = None
    depth: PosInt = 2
    init_std: PosFloat = 1e-3


def build_matrix_factorization(spec: MatrixFactorizationSpec, input_dim: int, output_dim: int,
                               generator: torch.Generator, dtype: torch.dtype = torch.float64) -> MatrixFactorization:
    """The `MatrixFactorization` of `spec`; its task gives (n, 2) positions and one output."""
    if (input_dim, output_dim) != (2, 1):
        raise ConfigError([f"model.kind: matrix_factorization maps (row, column) positions to one entry; the task "
                           f"has input_dim {input_dim} and output_dim {output_dim}, needs 2 and 1"])
    return MatrixFactorization(spec.rows, spec.cols, width=spec.width, depth=spec.depth, init_std=spec.init_std,
                               generator=generator, dtype=dtype)


register_model(MatrixFactorizationSpec, build_matrix_factorization)
