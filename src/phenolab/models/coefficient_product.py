"""The coefficient-product model of the optimistic-estimate toy (arXiv:2307.08921, the group's
teaching toy ``Optimistic_Estimate``): a linear model whose every coefficient is a product of L
factors, so depth L > 1 makes it nonlinear in its parameters while it stays linear in x. Its
closed-form GD is `phenolab.train.numpy_gd.coefficient_product_gd`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

DTYPE = torch.float64


class CoefficientProduct(nn.Module):
    """f(x) = c_0 + c_1 x_1 + ... + c_k x_k with c_i = prod_{l=1..L} u_i^(l): depth L = 1 is the
    linear model. Parameter ``factors`` (L, k + 1), every entry N(0, init_std^2) from `generator`."""

    def __init__(self, inputs: int = 2, depth: int = 2, init_std: float = 1e-6,
                 generator: torch.Generator | None = None, dtype: torch.dtype = DTYPE) -> None:
        super().__init__()
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.factors = nn.Parameter(init_std * torch.randn(depth, inputs + 1, generator=gen, dtype=torch.float64)
                                    .to(dtype))

    def coefficients(self) -> Tensor:
        return self.factors.prod(0)

    def forward(self, x: Tensor) -> Tensor:
        c = self.coefficients()
        return (c[0] + x @ c[1:])[:, None]
