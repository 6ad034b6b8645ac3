"""Recovery trials: many two-layer students, each trained on its own sample of a teacher, judged on
fresh inputs. Shared by the recovery experiments (single-neuron-recovery, optimistic-sample-size,
landscape-global-minima; protocols and checks in docs/specs/recovery.md).

Conventions (docs/specs/README.md): f_theta(x) = sum_k a_k sigma(w_k . x), no bias; x ~ N(0, I_d);
the student's init is a_k ~ N(0, (kappa sigma_0)^2), w_k ~ N(0, sigma_0^2 I / d) (standard
deviations, `MLPSpec.init.std`), so one seed gives the same normalized draw at every scale
sigma_0; loss (1 / 2n) sum e^2, full-batch GD; relative test error
e_test = mean_x (f - f*)^2 / Var_x f* on fresh points; a run *recovers* when e_test < tau.
Seed s's sample of size n is the first n points of one stream, so samples are nested in n.
"""

from __future__ import annotations

import math
from typing import Callable, cast

import numpy as np
import torch
from pydantic import Field

from phenolab.config import InitSpec, MLPSpec, PosFloat, PosInt, Spec
from phenolab.models import build_model
from phenolab.train.batched import gauss_newton, gradient_descent, pad_samples, stack_parameters
from phenolab.train.seeding import generator

DTYPE = torch.float64


class StudentParams(Spec):
    """What `recovery_trials` and `branch_starts` share: the teacher a* sigma(w* . x) (|w*| =
    w_norm, drawn from teacher_seed), the width-m students, the nested sample sizes and seeds, and
    the training: `steps` GD steps at `lr`, then `polish` Gauss-Newton iterations (None or 0:
    none; None is left out of the stored params), e_test on `n_test` fresh points."""

    d: PosInt
    width: PosInt
    activation: str = "tanh"
    a_star: float
    w_norm: PosFloat
    teacher_seed: int
    sizes: list[PosInt] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    lr: PosFloat
    steps: int = Field(ge=0)
    n_test: PosInt = 2000
    polish: int | None = Field(default=None, ge=0, exclude_if=lambda v: v is None)


class TrialParams(StudentParams):
    """`recovery_trials`: the students' init a_k ~ N(0, (kappa sigma0)^2), w_k ~ N(0, sigma0^2 I / d)."""

    sigma0: PosFloat
    kappa: PosFloat = 1.0


class BranchParams(StudentParams):
    """`branch_starts`: starts on the branch B1 of Q*, every parameter moved by N(0, eps^2)."""

    eps: float = Field(ge=0)


def neuron_target(d: int, a_star: float, w_norm: float, seed: int) -> tuple[float, torch.Tensor]:
    """A single-neuron target f*(x) = a* sigma(w* . x): w* uniform on the sphere of radius w_norm."""
    w = torch.randn(d, generator=generator(seed, "teacher"), dtype=DTYPE)
    return float(a_star), w_norm * w / w.norm()


def student_spec(width: int, d: int, sigma0: float, kappa: float = 1.0, activation: str = "tanh") -> MLPSpec:
    """The student: two-layer, no bias, std sigma_0 / sqrt(d) on the input weights, kappa sigma_0 on the output."""
    return MLPSpec(width=width, bias=False, activation=activation,
                     init=InitSpec(std=[sigma0 / math.sqrt(d), kappa * sigma0]))


def sample_inputs(seed: int, n: int, d: int) -> torch.Tensor:
    """Seed `seed`'s first n inputs x ~ N(0, I_d) (nested: a larger n extends the smaller sample)."""
    return torch.randn(max(n, 64), d, generator=generator(seed, "sample"), dtype=DTYPE)[:n]


def fresh_inputs(n: int, d: int, seed: int) -> torch.Tensor:
    """Fresh inputs for the test error, one set per teacher seed."""
    return torch.randn(n, d, generator=generator(seed, "test"), dtype=DTYPE)


def relative_errors(outputs: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """e_test per member: mean (f_b - f*)^2 / Var f*, outputs (B, N, 1), target (N, 1)."""
    return (((outputs - target) ** 2).mean((1, 2)) / target.var()).numpy()


def imbalance(params: dict[str, torch.Tensor]) -> np.ndarray:
    """C_k = a_k^2 - |w_k|^2 per member and neuron (B, m): conserved by gradient flow for
    1-homogeneous activations (Zhao, Bai & Zhang 2024, arXiv:2405.13787)."""
    w, a = params["layers.0.weight"], params["layers.1.weight"][:, 0, :]
    return (a ** 2 - (w ** 2).sum(-1)).numpy()


def active_neurons(params: dict[str, torch.Tensor], rel: float = 1e-3) -> np.ndarray:
    """Per member, the number of neurons with |a_k| |w_k| > rel max_j |a_j| |w_j| (docs/specs/recovery.md)."""
    w, a = params["layers.0.weight"], params["layers.1.weight"][:, 0, :]
    amp = a.abs() * w.norm(dim=-1)
    return (amp > rel * amp.max(-1, keepdim=True).values).sum(-1).numpy()


def recovery_trials(params: TrialParams) -> dict[str, np.ndarray]:
    """Train a width-m student from every seed on every sample size and measure its test error.

    Returns arrays indexed [size, seed]: e_test, train_loss, active; imbalance_init and
    imbalance_final [size, seed, neuron]; diverged.
    """
    d, m, seeds = params.d, params.width, params.seeds
    spec = student_spec(m, d, params.sigma0, params.kappa, params.activation)
    models = {s: build_model(spec, d, 1, generator(s, "model"), dtype=DTYPE) for s in seeds}
    starts = stack_parameters([models[s] for _ in params.sizes for s in seeds])
    return train_and_score(models[seeds[0]], starts, params)


def branch_starts(params: BranchParams) -> dict[str, np.ndarray]:
    """Students started near the zero-error set Q*, on its branch B1 (docs/specs/recovery.md): neuron 0 equals
    the target (a*, w*), the others have a = 0 and free input weights w ~ N(0, I / d); then every
    parameter moves by N(0, eps^2). Trained and scored as `recovery_trials`."""
    d, m, seeds = params.d, params.width, params.seeds
    a_star, w_star = neuron_target(d, params.a_star, params.w_norm, params.teacher_seed)
    model = build_model(student_spec(m, d, 1.0, 1.0, params.activation), d, 1, generator(0, "model"), dtype=DTYPE)
    ws, as_ = [], []
    for _ in params.sizes:
        for s in seeds:
            g = generator(s, "branch")
            w = torch.randn(m, d, generator=g, dtype=DTYPE) / math.sqrt(d)
            a = torch.zeros(1, m, dtype=DTYPE)
            w[0], a[0, 0] = w_star, a_star
            noise = torch.randn(m * d + m, generator=generator(s, "perturbation"), dtype=DTYPE)
            ws.append(w + params.eps * noise[:m * d].reshape(m, d))
            as_.append(a + params.eps * noise[m * d:].reshape(1, m))
    starts = {"layers.0.weight": torch.stack(ws), "layers.1.weight": torch.stack(as_)}
    return train_and_score(model, starts, params)


def train_and_score(model: torch.nn.Module, starts: dict[str, torch.Tensor],
                    params: StudentParams) -> dict[str, np.ndarray]:
    """GD (then optional Gauss-Newton) from `starts` (members ordered size-major, then seed) on each
    member's nested sample of the single-neuron teacher; e_test etc. indexed [size, seed]."""
    d, sizes, seeds = params.d, params.sizes, params.seeds
    a_star, w_star = neuron_target(d, params.a_star, params.w_norm, params.teacher_seed)
    sigma = cast(Callable[[torch.Tensor], torch.Tensor], model.sigma)  # the student is an `MLP`

    def target(x: torch.Tensor) -> torch.Tensor:
        return a_star * sigma(x @ w_star)[:, None]

    xs = [sample_inputs(s, n, d) for n in sizes for s in seeds]
    x, y, mask = pad_samples(xs, [target(xb) for xb in xs])
    fit = gradient_descent(model, starts, x, y, mask, lr=params.lr, steps=params.steps,
                           record_every=max(1, params.steps // 50))
    if params.polish:
        fit = gauss_newton(model, fit.params, x, y, mask, iterations=params.polish)
    x_test = fresh_inputs(params.n_test, d, params.teacher_seed)
    outputs = torch.func.vmap(lambda p: torch.func.functional_call(model, p, (x_test,)))(fit.params)
    shape = (len(sizes), len(seeds))
    m = starts["layers.0.weight"].shape[1]
    return {"e_test": relative_errors(outputs, target(x_test)).reshape(shape),
            "train_loss": fit.loss.reshape(shape), "diverged": fit.diverged.reshape(shape),
            "active": active_neurons(fit.params).reshape(shape),
            "imbalance_init": imbalance(starts).reshape(*shape, m),
            "imbalance_final": imbalance(fit.params).reshape(*shape, m),
            "sizes": np.array(sizes), "seeds": np.array(seeds)}


def recovery_rate(e_test: np.ndarray, tau: float) -> np.ndarray:
    """Fraction of seeds (last axis) with e_test < tau; a NaN error (diverged) counts as a failure."""
    return np.mean(np.nan_to_num(e_test, nan=np.inf) < tau, axis=-1)
