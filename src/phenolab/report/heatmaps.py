"""Heat maps for phenolab runs: the F-Principle peak map, neuron similarity matrices and sweep
grids, each a `matplotlib.figure.Figure` (re-exported by `phenolab.report.plots`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from phenolab.report.plot_style import (
    _LABEL_SIZE,
    _TICK_SIZE,
    _TITLE_SIZE,
    _as_1d,
    _decorate,
    _fmt_step,
    _new_axes,
    _uniform_extent,
)


def peak_heatmap(
    steps: Sequence[float] | np.ndarray,
    rel_err: np.ndarray,
    peak_labels: Sequence[str] | None = None,
    *,
    title: str = "Relative error per spectral peak",
    vmax: float = 1.0,
    cmap: str = "inferno",
    xlabel: str = "training step",
) -> Figure:
    """The F-Principle heat map: relative error Delta_F of each spectral peak over training.

    ``rel_err`` has shape ``(n_steps, n_peaks)``, peaks ordered from low to high frequency.
    The image is ``rel_err.T``: row ``i`` is peak ``i``, so the lowest frequency is the top
    row and frequency grows downwards; column ``j`` is ``steps[j]``. Evenly spaced steps give
    a true step axis (cells centred on the steps); otherwise columns are evenly spaced and the
    tick labels give the step of their column.
    The colour runs from 0 (dark, converged) to ``vmax`` (bright); larger errors saturate
    and NaN is drawn grey. The figure has two axes: the map and its colourbar.
    """
    steps_arr = _as_1d(steps, "steps")
    err = np.asarray(rel_err, dtype=float)
    if err.ndim != 2 or err.shape[0] != steps_arr.size:
        raise ValueError(f"rel_err must have shape (n_steps={steps_arr.size}, n_peaks), got {err.shape}")
    n_peaks = err.shape[1]
    labels = list(peak_labels) if peak_labels is not None else [f"peak {i + 1}" for i in range(n_peaks)]
    if len(labels) != n_peaks:
        raise ValueError(f"{len(labels)} peak labels for {n_peaks} peaks")

    fig, ax = _new_axes()
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="0.6")
    uniform = _uniform_extent(steps_arr)
    image = ax.imshow(err.T, aspect="auto", origin="upper", cmap=colormap, vmin=0.0, vmax=vmax,
                      interpolation="nearest",
                      extent=None if uniform is None else (*uniform, n_peaks - 0.5, -0.5))
    ax.set_yticks(range(n_peaks), labels)
    ax.set_ylabel("peak (low → high frequency)", fontsize=_LABEL_SIZE)
    if uniform is None:  # uneven steps: one column per step, labelled with the step
        cols = np.unique(np.linspace(0, steps_arr.size - 1, min(steps_arr.size, 8)).round().astype(int))
        ax.set_xticks(cols, [_fmt_step(steps_arr[c]) for c in cols])
    ax.set_xlabel(xlabel, fontsize=_LABEL_SIZE)
    ax.set_title(title, fontsize=_TITLE_SIZE)
    colorbar = fig.colorbar(image, ax=ax, extend="max" if np.nanmax(err, initial=0.0) > vmax else "neither")
    colorbar.set_label("relative error $\\Delta_F$", fontsize=_LABEL_SIZE)
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)
    return fig


def similarity_heatmap(matrix: np.ndarray, *, title: str = "") -> Figure:
    """A cosine-similarity matrix of neurons (rows already in display order), colour -1 to 1, as in
    the initial-condensation heat maps of Zhou et al. (arXiv:2105.11686)."""
    mat = np.asarray(matrix, dtype=float)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"similarity_heatmap needs a square matrix, got shape {mat.shape}")
    fig, ax = _new_axes((4.2, 3.6))
    image = ax.imshow(mat, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    cbar = fig.colorbar(image, ax=ax)
    cbar.set_label("cosine similarity", fontsize=_LABEL_SIZE)
    _decorate(ax, title=title, xlabel="neuron", ylabel="neuron")
    ax.grid(False)
    return fig


def grid_heatmap(
    x_values: Sequence[object],
    y_values: Sequence[object],
    z: np.ndarray,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    cbar_label: str = "",
    cmap: str = "viridis",
    annotate: bool = True,
) -> Figure:
    """A value per (x, y) cell of a sweep grid, z of shape (len(y), len(x)); NaN cells grey.
    Axis values are shown as labels, so they need not be evenly spaced or numeric."""
    z = np.asarray(z, dtype=float)
    if z.shape != (len(y_values), len(x_values)):
        raise ValueError(f"z must have shape (len(y), len(x)) = {(len(y_values), len(x_values))}, got {z.shape}")
    fig, ax = _new_axes((max(4.0, 0.9 * len(x_values) + 2.0), max(3.0, 0.5 * len(y_values) + 1.8)))
    masked = np.ma.masked_invalid(z)
    colormap = matplotlib.colormaps[cmap].copy()
    colormap.set_bad("0.85")
    image = ax.imshow(masked, cmap=colormap, origin="lower", aspect="auto", interpolation="nearest")
    cbar = fig.colorbar(image, ax=ax)
    cbar.set_label(cbar_label, fontsize=_LABEL_SIZE)
    ax.set_xticks(range(len(x_values)), [f"{v:g}" if isinstance(v, float) else str(v) for v in x_values])
    ax.set_yticks(range(len(y_values)), [f"{v:g}" if isinstance(v, float) else str(v) for v in y_values])
    if annotate and z.size <= 150:
        for (r, c), value in np.ndenumerate(z):
            if np.isfinite(value):
                ax.text(c, r, f"{value:.3g}", ha="center", va="center", fontsize=_TICK_SIZE, color="w")
    _decorate(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(False)
    return fig
