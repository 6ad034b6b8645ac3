"""Figures for phenolab runs, each returned as a `matplotlib.figure.Figure` for the caller to save.

Figures are built with ``Figure()`` directly, never through ``pyplot``: no global state, no
backend to select, nothing left open. ``fig.savefig(path_or_buffer, format="png")`` works
as usual. This module imports nothing of phenolab outside `phenolab.report`, so experiments can use
it freely. The heat maps live in `heatmaps` and the shared look in `plot_style`; both are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from phenolab.report.heatmaps import grid_heatmap, peak_heatmap, similarity_heatmap
from phenolab.report.plot_style import (
    _LABEL_SIZE,
    _TICK_SIZE,
    _TITLE_SIZE,
    FIGSIZE,
    _as_1d,
    _decorate,
    _fmt_step,
    _legend,
    _new_axes,
    _step_colors,
)

__all__ = ["FIGSIZE", "REGIME_COLORS", "REGIME_MARKERS", "curves", "feature_scatter", "fit_1d", "grid_heatmap",
           "loss_and_sharpness", "peak_heatmap", "phase_plane", "ranked_spectra", "similarity_heatmap",
           "spectra_1d", "spectrum_strips"]


def curves(
    steps: Sequence[float] | np.ndarray,
    series: Mapping[str, Sequence[float] | np.ndarray],
    *,
    title: str = "",
    ylabel: str = "",
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
    marks: Mapping[str, float | None] | None = None,
    xlabel: str = "training step",
    logx: bool = False,
    markers: bool = False,
) -> Figure:
    """Several labelled lines over ``steps``, with optional thresholds and step markers.

    ``logx``/``logy`` put an axis on a log scale (e.g. RD against width, log-log);
    ``markers`` draws a dot at every point (for short series).

    Each value of ``series`` has one entry per step (NaN leaves a gap). ``hlines`` draws a
    dashed horizontal line per threshold; ``marks`` a dotted vertical line per step (e.g. the
    step each peak converged; ``None`` or NaN, "never", is skipped). A mark whose label is
    also a series label takes that series' colour and no legend entry of its own.
    On a log scale, non-positive values are masked.
    """
    steps_arr = _as_1d(steps, "steps")
    fig, ax = _new_axes()
    colors: dict[str, object] = {}
    for label, values in series.items():
        y = _as_1d(values, f"series {label!r}")
        if y.size != steps_arr.size:
            raise ValueError(f"series {label!r} has {y.size} values for {steps_arr.size} steps")
        (line,) = ax.plot(steps_arr, y, label=label, linewidth=1.4, marker="o" if markers else None, markersize=3)
        colors[label] = line.get_color()
    if logy:
        ax.set_yscale("log", nonpositive="mask")
    if logx:
        ax.set_xscale("log", nonpositive="mask")
    for label, y in (hlines or {}).items():  # type: ignore[assignment]
        ax.axhline(y, color="0.35", linestyle="--", linewidth=1.0, label=f"{label} = {y:.3g}")  # type: ignore[arg-type]
    for label, step in (marks or {}).items():
        if step is None or not np.isfinite(step):
            continue
        color = colors.get(label, "0.45")
        legend_label = f"_{label}" if label in colors else f"{label} @ {_fmt_step(step)}"
        ax.axvline(step, color=color, linestyle=":", linewidth=1.2, label=legend_label)
    _decorate(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    _legend(ax)
    return fig


def fit_1d(
    x: Sequence[float] | np.ndarray,
    target: Sequence[float] | np.ndarray,
    snapshots: Sequence[tuple[int, np.ndarray]],
    *,
    x_train: Sequence[float] | np.ndarray | None = None,
    y_train: Sequence[float] | np.ndarray | None = None,
    title: str = "Model output during training",
    xlabel: str = "x",
    ylabel: str = "y",
) -> Figure:
    """The target curve (black, dashed, on top) and the model output at several steps (dark = early, light = late).

    ``snapshots`` is a list of ``(step, output on x)``; training points, if given, are drawn as
    dots. Points are sorted by ``x`` before drawing, so ``x`` need not be sorted.
    Lines on the axes: the target first, then one per snapshot; the dots are one collection.
    """
    x_arr = _as_1d(x, "x")
    order = np.argsort(x_arr, kind="stable")
    target_arr = _as_1d(target, "target")
    if target_arr.size != x_arr.size:
        raise ValueError(f"target has {target_arr.size} values for {x_arr.size} points")

    fig, ax = _new_axes()
    ax.plot(x_arr[order], target_arr[order], color="black", linestyle="--", linewidth=1.5, label="target", zorder=5)
    for (step, output), color in zip(snapshots, _step_colors(len(snapshots))):
        y = _as_1d(output, f"output at step {step}")
        if y.size != x_arr.size:
            raise ValueError(f"output at step {step} has {y.size} values for {x_arr.size} points")
        ax.plot(x_arr[order], y[order], color=color, linewidth=1.8, label=f"step {_fmt_step(step)}", zorder=3)
    if x_train is not None and y_train is not None:
        ax.scatter(_as_1d(x_train, "x_train"), _as_1d(y_train, "y_train"), s=12, color="tab:red",
                   edgecolors="white", linewidths=0.4, label="training points", zorder=6)
    _decorate(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    _legend(ax)
    return fig


def spectra_1d(
    freqs: Sequence[float] | np.ndarray,
    target_mag: Sequence[float] | np.ndarray,
    output_mags: Sequence[tuple[int, np.ndarray]],
    *,
    peaks: Sequence[float] | None = None,
    title: str = "Spectrum |DFT| of target and output",
    logy: bool = False,
    xlabel: str = "frequency",
) -> Figure:
    """|DFT| of the target (black, dashed, on top) and of the output at a few steps (dark = early, light = late).

    ``output_mags`` is a list of ``(step, |DFT| on freqs)``. ``peaks`` are frequencies, in
    the units of ``freqs`` (pass ``freqs[peak_indices]`` for indices), each marked by a
    dotted vertical line. Lines on the axes: target, one per output, one per peak.
    """
    f = _as_1d(freqs, "freqs")
    target_arr = _as_1d(target_mag, "target_mag")
    if target_arr.size != f.size:
        raise ValueError(f"target_mag has {target_arr.size} values for {f.size} frequencies")

    fig, ax = _new_axes()
    ax.plot(f, target_arr, color="black", linestyle="--", linewidth=1.5, label="target", zorder=5)
    for (step, mag), color in zip(output_mags, _step_colors(len(output_mags))):
        m = _as_1d(mag, f"|DFT| at step {step}")
        if m.size != f.size:
            raise ValueError(f"|DFT| at step {step} has {m.size} values for {f.size} frequencies")
        ax.plot(f, m, color=color, linewidth=1.6, label=f"step {_fmt_step(step)}", zorder=3)
    for i, peak in enumerate(peaks if peaks is not None else []):
        ax.axvline(peak, color="0.5", linestyle=":", linewidth=1.0, label="peaks" if i == 0 else "_peak")
    if logy:
        ax.set_yscale("log", nonpositive="mask")
    if f.size:
        ax.set_xlim(float(np.min(f)), float(np.max(f)))
    _decorate(ax, title=title, xlabel=xlabel, ylabel="|DFT|")
    _legend(ax)
    return fig


REGIME_COLORS = {"linear": "tab:blue", "critical": "tab:green", "condensed": "tab:red", "unknown": "0.6"}
REGIME_MARKERS = {"linear": "o", "critical": "D", "condensed": "s", "unknown": "x"}


def phase_plane(
    gamma: Sequence[float],
    gamma_prime: Sequence[float],
    measured: Sequence[str],
    *,
    theory: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """The (gamma, gamma') plane of Luo et al. (arXiv:2007.07497): the critical boundary (the ray
    gamma = 1, gamma' <= 0 and the ray gamma' = gamma - 1, gamma >= 1), the regions' names, and
    each point coloured by its measured regime, its marker giving the theory's regime."""
    g, gp = _as_1d(gamma, "gamma"), _as_1d(gamma_prime, "gamma_prime")
    if not (len(g) == len(gp) == len(measured)):
        raise ValueError("gamma, gamma_prime and measured must have the same length")
    fig, ax = _new_axes((5.2, 4.2))
    lo_g, hi_g = min(0.0, g.min() - 0.25), max(2.5, g.max() + 0.25)
    lo_p, hi_p = min(-1.5, gp.min() - 0.25), max(1.5, gp.max() + 0.25)
    ax.plot([1, 1], [lo_p, 0], color="k", linewidth=1.5)
    ax.plot([1, hi_g], [0, hi_g - 1], color="k", linewidth=1.5, label="critical boundary")
    ax.text(lo_g + 0.1, hi_p - 0.3, "linear", fontsize=_LABEL_SIZE, color=REGIME_COLORS["linear"])
    ax.text(hi_g - 0.7, lo_p + 0.2, "condensed", fontsize=_LABEL_SIZE, color=REGIME_COLORS["condensed"])
    shown: set[str] = set()
    for i, regime in enumerate(measured):
        marker = REGIME_MARKERS.get(theory[i] if theory is not None else regime, "o")
        label = f"measured {regime}" if regime not in shown else None
        shown.add(regime)
        ax.scatter(g[i], gp[i], color=REGIME_COLORS.get(regime, "0.6"), marker=marker, s=46,
                   edgecolors="k", linewidths=0.5, label=label, zorder=3)
    ax.set_xlim(lo_g, hi_g)
    ax.set_ylim(lo_p, hi_p)
    _decorate(ax, title=title, xlabel="gamma", ylabel="gamma'")
    _legend(ax)
    return fig


def feature_scatter(
    snapshots: Sequence[tuple[int, np.ndarray, np.ndarray]],
    *,
    title: str = "",
) -> Figure:
    """Neuron features over training, one panel per step: orientation theta_k (x, rad) against
    amplitude A_k (y), as in the group's condensation figures (arXiv:2007.07497)."""
    if not snapshots:
        raise ValueError("feature_scatter needs at least one (step, angle, amplitude) snapshot")
    fig = Figure(figsize=(2.4 * len(snapshots) + 0.6, 3.0), layout="constrained")
    axes = fig.subplots(1, len(snapshots), squeeze=False)[0]
    for ax, (step, angle, amplitude) in zip(axes, snapshots):
        ax.scatter(_as_1d(angle, "angle"), _as_1d(amplitude, "amplitude"), s=8, color="tab:red", alpha=0.7)
        ax.set_xlim(-np.pi, np.pi)
        ax.set_title(f"step {_fmt_step(step)}", fontsize=_LABEL_SIZE)
        ax.set_xlabel("orientation (rad)", fontsize=_LABEL_SIZE)
        ax.tick_params(labelsize=_TICK_SIZE)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("amplitude", fontsize=_LABEL_SIZE)
    if title:
        fig.suptitle(title, fontsize=_TITLE_SIZE)
    return fig


def ranked_spectra(
    spectra: Mapping[str, Sequence[float] | np.ndarray],
    *,
    title: str = "",
    ylabel: str = "|eigenvalue|",
    hlines: Mapping[str, float] | None = None,
    logx: bool = True,
    ymin: float | None = None,
) -> Figure:
    """Each spectrum's magnitudes in decreasing order against their rank 1..n, on a log y axis.

    Spectra of different sizes share the axes (e.g. Hessians of networks of different widths):
    a few outliers show at the left, the bulk near zero as the long tail. Negative values are
    drawn as crosses in their line's colour, exact zeros are masked. ``hlines`` draws a grey
    horizontal line per threshold (e.g. an outlier or bulk cut-off; dashed, dotted, dash-dotted).
    ``ymin`` cuts the y axis below (numerically zero eigenvalues would otherwise stretch it over
    dozens of decades). Lines on the axes: one per spectrum, then one per threshold; the crosses
    are one collection per spectrum that has any.
    """
    fig, ax = _new_axes()
    for label, values in spectra.items():
        arr = _as_1d(values, f"spectrum {label!r}")
        order = np.argsort(-np.abs(arr), kind="stable")
        rank = np.arange(1, arr.size + 1)
        (line,) = ax.plot(rank, np.abs(arr[order]), label=label, linewidth=1.4)
        negative = arr[order] < 0
        if negative.any():
            ax.scatter(rank[negative], -arr[order][negative], marker="x", s=10, linewidths=0.7,
                       color=line.get_color(), label="_negative")
    ax.set_yscale("log", nonpositive="mask")
    if logx:
        ax.set_xscale("log")
    for (label, y), style in zip((hlines or {}).items(), ["--", ":", "-."] * 10):
        ax.axhline(y, color="0.35", linestyle=style, linewidth=1.0, label=f"{label} = {y:.3g}")
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    _decorate(ax, title=title, xlabel="rank (by |eigenvalue|)", ylabel=ylabel)
    if any(np.any(_as_1d(v, "spectrum") < 0) for v in spectra.values()):
        ax.scatter([], [], marker="x", s=10, color="0.3", label="negative (x)")
    _legend(ax)
    return fig


def loss_and_sharpness(
    steps: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    sharp_steps: Sequence[float] | np.ndarray,
    sharpness: Sequence[float] | np.ndarray,
    threshold: float,
    *,
    spikes: Sequence[tuple[float, float, float | None]] = (),
    title: str = "",
    sharpness_label: str = "$\\lambda_{max}$",
    threshold_label: str = "$2/\\eta$",
) -> Figure:
    """Two panels over one step axis: the training loss (log scale) above, the sharpness (e.g.
    lambda_max of the loss Hessian) below with its stability threshold (e.g. 2/eta) dashed.

    Each spike ``(onset, peak, end)`` is shaded from onset to end (to the last step when ``end``
    is None) on both panels, with the peak dotted. Non-positive losses are masked.
    """
    steps_arr, loss_arr = _as_1d(steps, "steps"), _as_1d(loss, "loss")
    sharp_steps_arr, sharp_arr = _as_1d(sharp_steps, "sharp_steps"), _as_1d(sharpness, "sharpness")
    if steps_arr.size != loss_arr.size:
        raise ValueError(f"loss has {loss_arr.size} values for {steps_arr.size} steps")
    if sharp_steps_arr.size != sharp_arr.size:
        raise ValueError(f"sharpness has {sharp_arr.size} values for {sharp_steps_arr.size} steps")
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * 1.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ax in (top, bottom):
        ax.tick_params(labelsize=_TICK_SIZE)
    top.plot(steps_arr, loss_arr, linewidth=1.0, color="C0", label="training loss")
    top.set_yscale("log", nonpositive="mask")
    bottom.plot(sharp_steps_arr, sharp_arr, linewidth=1.2, color="C1", label=sharpness_label)
    bottom.axhline(threshold, color="0.35", linestyle="--", linewidth=1.0, label=f"{threshold_label} = {threshold:.4g}")
    last = float(max(steps_arr.max(initial=0.0), sharp_steps_arr.max(initial=0.0)))
    for i, (onset, peak, end) in enumerate(spikes):
        for ax in (top, bottom):
            ax.axvspan(onset, last if end is None else end, color="C3", alpha=0.15,
                       label="spike (onset to end)" if i == 0 and ax is top else None)
            ax.axvline(peak, color="C3", linestyle=":", linewidth=1.0,
                       label="peak" if i == 0 and ax is top else None)
    _decorate(top, title=title, xlabel="", ylabel="loss")
    _decorate(bottom, title="", xlabel="training step", ylabel="sharpness")
    _legend(top)
    _legend(bottom)
    return fig


def spectrum_strips(
    spectra: Mapping[str, Sequence[float] | np.ndarray],
    *,
    predicted: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    title: str = "",
    ylabel: str = "eigenvalue",
    linthresh: float | None = None,
) -> Figure:
    """Signed spectra side by side: one column per label (e.g. a narrow network's Hessian and
    those of its embeddings), each eigenvalue a dot, on a symmetric-log y axis (linear within
    +-``linthresh``) so that small negative eigenvalues show beside large positive ones; a grey
    line marks zero. ``predicted`` values (keyed by a spectrum's label) are drawn as crosses just
    right of that column (e.g. a predicted saddle curvature). ``linthresh`` default: the power of
    ten at or below the smallest magnitude above 1e-8 of the largest (1 for an all-zero input).
    Collections on the axes: one per spectrum, then one per predicted entry.
    """
    arrays = {label: _as_1d(values, f"spectrum {label!r}") for label, values in spectra.items()}
    unknown = sorted(set(predicted or {}) - set(arrays))
    if unknown:
        raise ValueError(f"predicted has labels that are not spectra: {unknown}")
    if linthresh is None:
        mags = np.abs(np.concatenate([a[np.isfinite(a)] for a in arrays.values()] or [np.zeros(0)]))
        top = mags.max(initial=0.0)
        small = mags[mags > 1e-8 * top]
        linthresh = 10.0 ** np.floor(np.log10(small.min())) if small.size else 1.0
    if not linthresh > 0:
        raise ValueError(f"linthresh must be > 0, got {linthresh}")
    fig, ax = _new_axes((max(4.0, 1.1 * len(arrays) + 2.0), FIGSIZE[1]))
    for i, values in enumerate(arrays.values()):
        ax.scatter(np.full(values.size, float(i)), values, s=18, color=f"C{i % 10}", zorder=3)
    labelled = False
    for label, values in (predicted or {}).items():  # type: ignore[assignment]
        arr = _as_1d(values, f"predicted {label!r}")
        i = list(arrays).index(label)
        ax.scatter(np.full(arr.size, i + 0.18), arr, marker="x", s=28, color="0.2", zorder=4,
                   label=None if labelled else "predicted")
        labelled = True
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set_xticks(range(len(arrays)), list(arrays), rotation=20, ha="right")
    ax.set_xlim(-0.6, len(arrays) - 0.4)
    _decorate(ax, title=title, xlabel="", ylabel=f"{ylabel} (symlog, linear within +-{linthresh:.2g})")
    _legend(ax)
    return fig
