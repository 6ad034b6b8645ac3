"""Polishing a model to a critical point of its loss: BFGS, then Newton steps on the exact Hessian.

For the theory experiments that need a critical point to machine precision (the embedding
principle's narrow critical point and reduced plateaus, arXiv:2105.14573): the loss is the
papers' L(theta) = (1/2n) sum_i |f_theta(x_i) - y_i|^2 (`half_squared_error`, `half_mse`), over
the model's flat trainable parameters theta (`phenolab.probes.parameters.flat_parameters`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor, nn

from phenolab.probes.hessian import hessian_matrix
from phenolab.probes.parameters import assign_parameters, flat_parameters, half_squared_error, loss_and_gradient

__all__ = ["bfgs_newton", "half_mse_hessian"]


def half_mse_hessian(model: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    """The exact dense Hessian of L = (1/2n) sum e^2 at the model's parameters (autograd, float64)."""
    return hessian_matrix(model, half_squared_error, x, y, dtype=torch.float64).numpy()


def bfgs_newton(model: nn.Module, x: Tensor, y: Tensor, theta0: np.ndarray, *, gtol: float, newton_steps: int,
                maxiter: int = 2000) -> float:
    """Minimize L = (1/2n) sum e^2 from theta0: scipy BFGS (gradient norm below `gtol`, at most
    `maxiter` iterations), then up to `newton_steps` Newton steps theta <- theta - H^-1 grad L while
    the Hessian is positive definite (a step stops at the first point where it is not). The model
    is left at the result; returns the loss there."""
    res = minimize(lambda t: loss_and_gradient(model, x, y, t), np.asarray(theta0, dtype=float), jac=True,
                   method="BFGS", options={"gtol": gtol, "maxiter": maxiter})
    assign_parameters(model, res.x)
    for _ in range(newton_steps):
        _, grad = loss_and_gradient(model, x, y)
        H = half_mse_hessian(model, x, y)
        if np.linalg.eigvalsh(H)[0] <= 0:
            break
        assign_parameters(model, flat_parameters(model) - np.linalg.solve(H, grad))
    return loss_and_gradient(model, x, y)[0]
