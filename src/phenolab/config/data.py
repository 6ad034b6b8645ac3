"""Data specs: the registered ``data.kind``s (`phenolab.tasks` builds their tasks)."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import Field, model_validator

from phenolab.config.families import DATA_KINDS, KindSpec
from phenolab.config.fields import Activation, NonNegFloat, PosFloat, PosInt


class SeededData(Protocol):
    """What every data kind has (to mypy, ``RunSpec.data`` is a `KindSpec`): its own seed."""

    @property
    def seed(self) -> int | None: ...


class _DataBase(KindSpec):
    n_test: Annotated[int, Field(ge=0)] = 0
    noise: NonNegFloat = 0.0
    seed: int | None = None  # data randomness; None = the run's seed


@DATA_KINDS.register
class SinesData(_DataBase):
    """1-D target y = sum_j A_j sin(omega_j x) on an interval (the F-Principle target by default)."""

    kind: Literal["sines"] = "sines"
    frequencies: list[float] = [1.0, 3.0, 5.0]
    amplitudes: list[float] = [1.0, 2.0, 3.0]
    interval: tuple[float, float] = (-5.0, 5.0)
    n_train: PosInt = 101
    sampling: Literal["grid", "uniform"] = "grid"

    @model_validator(mode="after")
    def _check(self) -> SinesData:
        if len(self.frequencies) != len(self.amplitudes):
            raise ValueError(
                f"frequencies ({len(self.frequencies)}) and amplitudes ({len(self.amplitudes)}) "
                "must have the same length"
            )
        if not self.interval[0] < self.interval[1]:
            raise ValueError(f"interval must be (low, high) with low < high, got {self.interval}")
        return self


@DATA_KINDS.register
class ExpressionData(_DataBase):
    """1-D target given as a numpy expression in x, e.g. ``sin(x) + 0.5*abs(x)``."""

    kind: Literal["expression"] = "expression"
    expr: str
    interval: tuple[float, float] = (-1.0, 1.0)
    n_train: PosInt = 101
    sampling: Literal["grid", "uniform"] = "grid"

    @model_validator(mode="after")
    def _check(self) -> ExpressionData:
        if not self.interval[0] < self.interval[1]:
            raise ValueError(f"interval must be (low, high) with low < high, got {self.interval}")
        return self


@DATA_KINDS.register
class TeacherData(_DataBase):
    """d-D target: a random two-layer teacher network y = sum_k a_k sigma(w_k . x), x ~ U([-1,1]^d)."""

    kind: Literal["teacher"] = "teacher"
    input_dim: PosInt = 5
    width: PosInt = 4
    activation: Activation = "tanh"
    n_train: PosInt = 500


@DATA_KINDS.register
class RidgeData(_DataBase):
    """d-D target y = sum_j A_j sin(omega_j u_j . x), random unit directions u_j, x ~ U([-1,1]^d)."""

    kind: Literal["ridge"] = "ridge"
    input_dim: PosInt = 5
    frequencies: list[float] = [2.0, 8.0]
    amplitudes: list[float] = [1.0, 0.5]
    n_train: PosInt = 2000

    @model_validator(mode="after")
    def _check(self) -> RidgeData:
        if len(self.frequencies) != len(self.amplitudes):
            raise ValueError(
                f"frequencies ({len(self.frequencies)}) and amplitudes ({len(self.amplitudes)}) "
                "must have the same length"
            )
        return self


@DATA_KINDS.register
class CoordinateSinesData(_DataBase):
    """d-D target y = sum_k A sin(omega x_k + phi) over the coordinates, x ~ U([low, high]^d)."""

    kind: Literal["coordinate_sines"] = "coordinate_sines"
    input_dim: PosInt = 5
    amplitude: float = 3.5
    frequency: float = 5.0
    phase: float = 1.0
    interval: tuple[float, float] = (-4.0, 2.0)
    n_train: PosInt = 80

    @model_validator(mode="after")
    def _check(self) -> CoordinateSinesData:
        if not self.interval[0] < self.interval[1]:
            raise ValueError(f"interval must be (low, high) with low < high, got {self.interval}")
        return self


@DATA_KINDS.register
class ProductData(_DataBase):
    """Target y = x_1 x_2 on 2-D inputs: n points evenly spaced on the unit circle,
    x = (cos t, sin t), or x ~ N(0, I_2) (Jacot et al.'s NTK experiments, arXiv:1806.07572)."""

    kind: Literal["product"] = "product"
    sampling: Literal["circle", "gaussian"] = "circle"
    n_train: PosInt = 16


@DATA_KINDS.register
class GaussianMixtureData(_DataBase):
    """k classes, one Gaussian cluster each: centres ~ N(0, spread^2 I_d), points ~ N(centre, I_d),
    n_train points in total, labels balanced (the Hessian setting of docs/specs/hessian-outliers.md)."""

    kind: Literal["gaussian_mixture"] = "gaussian_mixture"
    input_dim: PosInt = 10
    classes: Annotated[int, Field(ge=2)] = 4
    spread: PosFloat = 1.5
    n_train: PosInt = 1000
    one_hot: bool = False  # integer labels (for cross-entropy); one-hot vectors for MSE


@DATA_KINDS.register
class LinearTeacherData(_DataBase):
    """x ~ N(0, I_d), y = beta . x with beta ~ N(0, scale^2 / d I) drawn once (docs/specs/sharpness-width.md)."""

    kind: Literal["linear_teacher"] = "linear_teacher"
    input_dim: PosInt = 20
    scale: PosFloat = 6.0
    n_train: PosInt = 200


@DATA_KINDS.register
class DigitsData(_DataBase):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), pixels scaled to [0, 1]."""

    kind: Literal["digits"] = "digits"
    n_train: PosInt = 1000
    one_hot: bool = True  # targets as one-hot vectors (for MSE); else integer labels (for CE)
    noise: Literal[0.0] = 0.0  # type: ignore[valid-type]  # real labels: no added noise

    @model_validator(mode="after")
    def _check(self) -> DigitsData:
        if self.n_train + self.n_test > 1797:
            raise ValueError(f"n_train + n_test must be <= 1797 (the digits data set), got "
                             f"{self.n_train} + {self.n_test}")
        return self


@DATA_KINDS.register
class QuadraticTeacherData(_DataBase):
    """x ~ N(0, I_d / d), y = (1/2) (beta . x)^2 with beta ~ N(0, I_d) drawn once (Kumar et al. 2023,
    arXiv:2310.06110 section 5; sizes in docs/specs/lazy-rich.md). The task's ``info["beta"]``
    holds beta (d, 1), and it can draw fresh inputs (``Task.sample``) for Monte-Carlo test losses."""

    kind: Literal["quadratic_teacher"] = "quadratic_teacher"
    input_dim: PosInt = 50
    n_train: PosInt = 200
