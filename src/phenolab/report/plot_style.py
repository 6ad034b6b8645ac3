"""The shared look of phenolab's figures: size, font sizes, a fresh axes, step colours, legend,
title and grid, and the checks of array arguments (used by `plots` and `heatmaps`)."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

FIGSIZE = (6.0, 3.5)
"""Default figure size in inches: fits two side by side on a report page."""

_TITLE_SIZE = 11
_LABEL_SIZE = 10
_TICK_SIZE = 8.5
_LEGEND_SIZE = 8


def _new_axes(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """A fresh figure (constrained layout) with one axes."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    ax.tick_params(labelsize=_TICK_SIZE)
    return fig, ax


def _as_1d(values: object, name: str) -> np.ndarray:
    """``values`` as a flat float array; a column vector ``(n, 1)`` is accepted."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _fmt_step(step: float) -> str:
    """A step number as a short tick label: integers without decimals."""
    return str(int(step)) if float(step).is_integer() else f"{step:.3g}"


def _step_colors(n: int, cmap: str = "viridis") -> list[tuple[float, float, float, float]]:
    """``n`` colours from early (dark) to late (bright) along ``cmap``."""
    colormap = matplotlib.colormaps[cmap]
    if n == 1:
        return [colormap(0.5)]
    return [colormap(v) for v in np.linspace(0.0, 0.8, n)]


def _legend(ax: Axes) -> None:
    """A small legend, only if something on the axes is labelled."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=_LEGEND_SIZE, ncol=2 if len(handles) > 6 else 1, framealpha=0.85)


def _decorate(ax: Axes, *, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels and a light grid."""
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.set_xlabel(xlabel, fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
    ax.grid(alpha=0.3, linewidth=0.6)


def _uniform_extent(steps: np.ndarray) -> tuple[float, float] | None:
    """``(left, right)`` edges if ``steps`` are evenly spaced and increasing (cells centred on steps), else None."""
    if steps.size < 2:
        return None
    gaps = np.diff(steps)
    if gaps[0] <= 0 or not np.allclose(gaps, gaps[0], rtol=1e-6, atol=0.0):
        return None
    half = gaps[0] / 2
    return float(steps[0] - half), float(steps[-1] + half)
