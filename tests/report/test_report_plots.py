"""The figures of `phenolab.report.plots`: right content, and they save to PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from phenolab.report.plots import curves, fit_1d, peak_heatmap, spectra_1d

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    return buffer.getvalue()


def test_peak_heatmap_shows_rel_err_transposed_with_lowest_peak_on_top() -> None:
    steps = np.array([0, 10, 20, 50, 100])
    rel_err = np.random.default_rng(0).uniform(0, 1.5, size=(5, 3))
    fig = peak_heatmap(steps, rel_err, ["k=1", "k=3", "k=5"], vmax=1.0)

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # the map and its colourbar
    ax = fig.axes[0]
    assert len(ax.images) == 1
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), rel_err.T)
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["k=1", "k=3", "k=5"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # row 0 (lowest frequency) at the top
    assert "0" in [t.get_text() for t in ax.get_xticklabels()]
    assert _png(fig).startswith(PNG_SIGNATURE)


def test_peak_heatmap_even_steps_give_a_true_step_axis() -> None:
    steps = np.arange(0, 1001, 100)
    fig = peak_heatmap(steps, np.zeros((11, 2)))
    assert fig.axes[0].get_xlim() == (-50.0, 1050.0)  # cells centred on the steps


def test_peak_heatmap_default_labels_and_shape_check() -> None:
    fig = peak_heatmap([1, 2], np.full((2, 4), np.nan))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["peak 1", "peak 2", "peak 3", "peak 4"]
    with pytest.raises(ValueError):
        peak_heatmap([1, 2, 3], np.zeros((2, 4)))
    with pytest.raises(ValueError):
        peak_heatmap([1, 2], np.zeros((2, 4)), ["a", "b"])


def test_curves_draws_series_thresholds_and_marks() -> None:
    steps = np.arange(0, 100, 10)
    series = {"peak 1": np.linspace(1, 0.01, 10), "peak 2": np.linspace(1, 0.1, 10)}
    fig = curves(steps, series, title="errors", ylabel="Delta_F", logy=True,
                 hlines={"tolerance": 0.05}, marks={"peak 1": 40, "peak 2": None, "lr drop": 70})

    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert len(ax.lines) == 2 + 1 + 2  # series, threshold, marks (the None mark is skipped)
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "errors"
    assert ax.lines[3].get_color() == ax.lines[0].get_color()  # a mark matching a series shares its colour
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["peak 1", "peak 2", "tolerance = 0.05", "lr drop @ 70"]
    assert _png(fig).startswith(PNG_SIGNATURE)


def test_curves_rejects_series_of_wrong_length() -> None:
    with pytest.raises(ValueError):
        curves([0, 1, 2], {"a": [1.0, 2.0]})


def test_fit_1d_draws_target_snapshots_and_training_points() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 50)  # unsorted on purpose
    target = np.sin(3 * x)
    snapshots = [(0, np.zeros(50)), (100, 0.5 * target), (1000, target.reshape(-1, 1))]
    fig = fit_1d(x, target, snapshots, x_train=x[:10], y_train=target[:10], title="fit")

    ax = fig.axes[0]
    assert len(ax.lines) == 1 + 3
    assert sum(isinstance(c, PathCollection) for c in ax.collections) == 1
    xs = ax.lines[0].get_xdata()
    assert np.all(np.diff(xs) >= 0)  # drawn in x order
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["target", "step 0", "step 100", "step 1000", "training points"]
    assert _png(fig).startswith(PNG_SIGNATURE)


def test_spectra_1d_draws_target_outputs_and_peaks() -> None:
    freqs = np.arange(33, dtype=float)
    target = np.exp(-((freqs - 4) ** 2)) + 0.5 * np.exp(-((freqs - 12) ** 2))
    fig = spectra_1d(freqs, target, [(0, target * 0.1), (500, target * 0.9)], peaks=[4.0, 12.0], logy=True)

    ax = fig.axes[0]
    assert len(ax.lines) == 1 + 2 + 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["target", "step 0", "step 500", "peaks"]
    assert ax.get_xlim() == (0.0, 32.0)
    assert _png(fig).startswith(PNG_SIGNATURE)


def test_default_size_is_moderate() -> None:
    fig = curves([0, 1], {"a": [1, 2]})
    width, height = fig.get_size_inches()
    assert 4 <= width <= 8 and 2.5 <= height <= 5


def test_phase_plane_draws_the_boundary_and_one_marker_per_point():
    from phenolab.report.plots import phase_plane

    fig = phase_plane([0.5, 1.5, 1.0], [0.0, 0.0, 0.0], ["linear", "condensed", "critical"],
                      theory=["linear", "condensed", "critical"], title="t")
    ax = fig.axes[0]
    assert len(ax.collections) == 3  # one scatter per point
    xs = sorted(tuple(line.get_xdata()) for line in ax.lines)
    assert (1, 1) in xs  # the vertical ray gamma = 1


def test_feature_scatter_one_panel_per_snapshot():
    import numpy as np

    from phenolab.report.plots import feature_scatter

    snaps = [(s, np.linspace(-1, 1, 5), np.ones(5)) for s in (0, 10, 20)]
    fig = feature_scatter(snaps, title="x")
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "step 10"


def test_similarity_heatmap_keeps_the_matrix_and_the_colour_range():
    import numpy as np

    from phenolab.report.plots import similarity_heatmap

    mat = np.array([[1.0, -1.0], [-1.0, 1.0]])
    fig = similarity_heatmap(mat, title="t")
    image = fig.axes[0].images[0]
    assert np.array_equal(image.get_array(), mat) and image.get_clim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="square"):
        similarity_heatmap(np.ones((2, 3)))


def test_ranked_spectra_sorts_magnitudes_and_marks_negatives():
    from phenolab.report.plots import ranked_spectra

    small = np.array([-0.001, 1.0, 0.1, 0.0, 0.01])
    large = np.linspace(2.0, 0.002, 50)
    fig = ranked_spectra({"k=2": small, "k=4": large}, title="t", hlines={"outliers": 0.05})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    first, second, threshold = ax.lines
    np.testing.assert_array_equal(first.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(first.get_ydata(), [1.0, 0.1, 0.01, 0.001, 0.0])
    np.testing.assert_array_equal(second.get_ydata(), large)
    assert threshold.get_ydata()[0] == 0.05
    crosses = [c for c in ax.collections if len(c.get_offsets())]
    assert len(crosses) == 1 and np.array_equal(crosses[0].get_offsets(), [[4, 0.001]])
    assert "negative (x)" in ax.get_legend_handles_labels()[1]
    assert _png(fig).startswith(PNG_SIGNATURE)
    assert ax.get_ylim()[0] < 1e-3  # no cut: the smallest nonzero magnitude shows
    assert ranked_spectra({"k=2": small}, ymin=1e-2).axes[0].get_ylim()[0] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="one-dimensional"):
        ranked_spectra({"bad": np.ones((2, 3))})


def test_loss_and_sharpness_two_panels_threshold_and_spike_shading() -> None:
    from phenolab.report.plots import loss_and_sharpness

    steps = np.arange(200)
    loss = np.exp(-steps / 50.0) + 1e-3
    sharp_steps = steps[::10]
    sharpness = np.linspace(1.0, 2.2, sharp_steps.size)
    fig = loss_and_sharpness(steps, loss, sharp_steps, sharpness, 2.0, spikes=[(50, 60, 80), (150, 170, None)],
                             title="spikes")
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "linear"
    np.testing.assert_array_equal(top.lines[0].get_ydata(), loss)
    np.testing.assert_array_equal(bottom.lines[0].get_ydata(), sharpness)
    assert bottom.lines[1].get_ydata()[0] == 2.0  # the threshold line
    assert len(top.patches) == 2 and len(bottom.patches) == 2  # one shaded span per spike and panel
    assert top.patches[1].get_x() + top.patches[1].get_width() == pytest.approx(199)  # not ended: to the last step
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert legend == ["training loss", "spike (onset to end)", "peak"]
    assert _png(fig).startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError):
        loss_and_sharpness(steps, loss[:-1], sharp_steps, sharpness, 2.0)


def test_spectrum_strips_columns_symlog_and_predicted_crosses() -> None:
    from phenolab.report.plots import spectrum_strips

    spectra = {"width 1": [0.0113, 0.873, 3.26], "split": [-0.144, 1e-17, 0.01, 0.5, 0.9, 3.3]}
    fig = spectrum_strips(spectra, predicted={"split": [-0.1445]}, title="t")
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    first, second, cross = ax.collections
    np.testing.assert_array_equal(first.get_offsets(), [[0, 0.0113], [0, 0.873], [0, 3.26]])
    assert second.get_offsets()[:, 0].tolist() == [1.0] * 6
    np.testing.assert_allclose(cross.get_offsets(), [[1.18, -0.1445]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["width 1", "split"]
    assert "predicted" in ax.get_legend_handles_labels()[1]
    assert "linear within +-0.01" in ax.get_ylabel()  # smallest magnitude above 1e-8 max: 0.01
    assert _png(fig).startswith(PNG_SIGNATURE)
    assert "+-0.5" in spectrum_strips({"a": [1.0]}, linthresh=0.5).axes[0].get_ylabel()
    assert "+-1" in spectrum_strips({"zeros": [0.0, 0.0]}).axes[0].get_ylabel()
    with pytest.raises(ValueError, match="not spectra"):
        spectrum_strips(spectra, predicted={"other": [1.0]})
