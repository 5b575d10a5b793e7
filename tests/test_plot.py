"""Tests for dlt_lib.plot.

The numbers are checked against values computed here by hand or by a plain
loop (not by calling the module's own helpers); the figures are checked by
reading back what was drawn (Line2D data, texts, image arrays), and the
saved files by their bytes.
"""

from __future__ import annotations

import os
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dlt_lib import files, plot  # noqa: E402
from dlt_lib.training import History, ValidationRecord  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------
# tile_raster_images
# ----------------------------------------------------------------------------
def _expected_tile(row):
    """Image scaled to [0, 1] then to 0..255, written out independently of the module."""
    lo, hi = row.min(), row.max()
    return np.round((row - lo) / (hi - lo) * 255).astype(np.uint8)


def test_tile_raster_images_shape_and_dtype():
    X = np.random.default_rng(0).normal(size=(7, 12))
    out = plot.tile_raster_images(X, img_shape=(3, 4), tile_shape=(2, 4), tile_spacing=(1, 2))
    # rows: 2 images of 3 + 1 gap; cols: 4 images of 4 + 3 gaps of 2
    assert out.shape == (2 * 3 + 1, 4 * 4 + 3 * 2)
    assert out.dtype == np.uint8


def test_tile_raster_images_places_each_scaled_image():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 12)) * 3 + 1
    out = plot.tile_raster_images(X, img_shape=(3, 4), tile_shape=(2, 4), tile_spacing=(1, 2))
    gaps = np.ones(out.shape, dtype=bool)
    for k in range(7):
        row, col = divmod(k, 4)
        top, left = row * (3 + 1), col * (4 + 2)
        block = out[top : top + 3, left : left + 4]
        np.testing.assert_array_equal(block, _expected_tile(X[k]).reshape(3, 4))
        assert block.min() == 0 and block.max() == 255
        gaps[top : top + 3, left : left + 4] = False
    # Gaps and the eighth, empty tile are black.
    assert np.all(out[gaps] == 0)
    assert np.all(out[4:7, 18:22] == 0)


def test_tile_raster_images_constant_rows_do_not_divide_by_zero():
    X = np.zeros((3, 4))
    X[1] = 5.0  # constant, non-zero
    X[2] = [0.0, 1.0, 2.0, 3.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a 0/0 would warn (RuntimeWarning) and fail here
        out = plot.tile_raster_images(X, img_shape=(2, 2), tile_shape=(1, 3), tile_spacing=(0, 1))
    assert out.shape == (2, 3 * 2 + 2)
    np.testing.assert_array_equal(out[:, 0:2], 0)
    np.testing.assert_array_equal(out[:, 3:5], 0)
    np.testing.assert_array_equal(out[:, 6:8], [[0, 85], [170, 255]])


def test_tile_raster_images_without_scaling():
    X = np.array([[0.0, 0.5, 1.0, 0.25], [0.1, 0.2, 0.3, 0.4]])
    out = plot.tile_raster_images(X, img_shape=(2, 2), tile_shape=(1, 2), tile_spacing=(0, 0),
                                  scale_rows_to_unit_interval=False)  # fmt: skip
    np.testing.assert_array_equal(out[:, :2], [[0, 128], [255, 64]])
    np.testing.assert_array_equal(out[:, 2:], np.round(255 * X[1]).reshape(2, 2))
    # uint8 pixels (as stored in MNIST) are used as they are.
    pixels = np.array([[0, 7, 200, 255]], dtype=np.uint8)
    out = plot.tile_raster_images(
        pixels, img_shape=(2, 2), tile_shape=(1, 1), scale_rows_to_unit_interval=False
    )
    np.testing.assert_array_equal(out, [[0, 7], [200, 255]])


def test_tile_raster_images_default_grid_and_truncation():
    X = np.random.default_rng(2).random((10, 4))
    assert plot.tile_raster_images(X, img_shape=(2, 2)).shape == (3 * 3 - 1, 4 * 3 - 1)  # 3 x 4 grid
    # A grid too small shows the first images only.
    out = plot.tile_raster_images(X, img_shape=(2, 2), tile_shape=(1, 2), tile_spacing=(0, 0))
    np.testing.assert_array_equal(out[:, 2:], _expected_tile(X[1]).reshape(2, 2))


def test_tile_raster_images_rejects_wrong_row_length():
    with pytest.raises(ValueError, match="28\\*28=784"):
        plot.tile_raster_images(np.zeros((2, 700)))


def test_show_tiles_draws_the_tile_raster_pixels():
    X = np.random.default_rng(3).normal(size=(5, 6))
    fig = plot.show_tiles(X, img_shape=(2, 3), tile_shape=(2, 3), tile_spacing=(1, 1), title="tiles")
    assert isinstance(fig, Figure)
    drawn = fig.axes[0].get_images()[0].get_array()
    expected = plot.tile_raster_images(X, img_shape=(2, 3), tile_shape=(2, 3), tile_spacing=(1, 1))
    assert drawn.shape == expected.shape
    # Images: the same pixels; gaps and the empty sixth tile: masked (drawn in the page colour).
    np.testing.assert_array_equal(drawn.data[~drawn.mask], expected[~drawn.mask])
    assert drawn.mask[2, :].all() and drawn.mask[:, 3].all() and drawn.mask[3:, 8:].all()
    assert drawn.mask.sum() == drawn.size - 5 * 6


# ----------------------------------------------------------------------------
# show_weights
# ----------------------------------------------------------------------------
def test_show_weights_one_panel_per_class_with_a_zero_centred_scale():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(16, 3))
    W[0, 0] = -5.0  # the largest magnitude is negative
    fig = plot.show_weights(W, img_shape=(4, 4), class_names=["a", "b", "c"])
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["a", "b", "c"]
    for j, ax in enumerate(panels):
        image = ax.get_images()[0]
        np.testing.assert_array_equal(image.get_array(), W[:, j].reshape(4, 4))
        assert image.norm.vmin == -5.0 and image.norm.vmax == 5.0


def test_show_weights_tiles_many_units_and_checks_shape():
    W = np.random.default_rng(5).normal(size=(16, 30))
    fig = plot.show_weights(W, img_shape=(4, 4), max_panels=20)
    images = [image for ax in fig.axes for image in ax.get_images()]
    assert len(images) == 1
    assert images[0].get_array().shape == (5 * 4 + 4, 6 * 4 + 5)  # 30 units -> 5 x 6 grid, 1-pixel gaps
    with pytest.raises(ValueError, match="pass W.T"):
        plot.show_weights(W.T, img_shape=(4, 4))


# ----------------------------------------------------------------------------
# confusion_matrix
# ----------------------------------------------------------------------------
def test_confusion_matrix_counts():
    y_true = [0, 0, 1, 2, 2, 2, 1]
    y_pred = [0, 1, 1, 2, 0, 2, 1]
    expected = [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    np.testing.assert_array_equal(plot.confusion_matrix(y_true, y_pred), expected)
    padded = plot.confusion_matrix(
        np.array(y_true, dtype=np.uint8), np.array(y_pred, dtype=float), n_classes=4
    )
    assert padded.shape == (4, 4)
    np.testing.assert_array_equal(padded[:3, :3], expected)
    assert padded[3].sum() == 0 and padded[:, 3].sum() == 0


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="3 and 2"):
        plot.confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=">= 0"):
        plot.confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match="out of range"):
        plot.confusion_matrix([0, 3], [0, 1], n_classes=3)
    with pytest.raises(ValueError, match="integer"):
        plot.confusion_matrix([0, 1], [0.2, 0.9])


def test_plot_confusion_matrix_writes_counts_with_contrast():
    y_true = [0] * 50 + [1] * 3 + [2] * 4
    y_pred = [0] * 48 + [1, 2] + [1] * 3 + [0, 2, 2, 2]
    fig = plot.plot_confusion_matrix(y_true, y_pred, class_names=["zero", "one", "two"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zero", "one", "two"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    counts = plot.confusion_matrix(y_true, y_pred)
    assert {k: int(t.get_text()) for k, t in cells.items()} == {
        (i, j): counts[i, j] for i in range(3) for j in range(3)
    }
    # The dark cell (48) gets white text, a light cell (1) black text.
    assert cells[(0, 0)].get_color() == "white"
    assert cells[(2, 0)].get_color() == "black"
    assert "5.26% error" in ax.get_title(loc="left")  # 3 mistakes in 57


def test_plot_confusion_matrix_normalized_rows():
    fig = plot.plot_confusion_matrix([0, 0, 0, 1], [0, 1, 1, 1], normalize=True, n_classes=3)
    values = fig.axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(values, [[100 / 3, 200 / 3, 0], [0, 100, 0], [0, 0, 0]])  # empty class: zeros


# ----------------------------------------------------------------------------
# learning_curves
# ----------------------------------------------------------------------------
def _history(valid=(0.12, 0.09, 0.08, 0.085, 0.0749), frequency=247):
    """A hand-made run: validation every 247 updates, the best (7.49%) at iteration 1234."""
    records, best = [], np.inf
    for k, error in enumerate(valid):
        is_best = error < best
        best = min(best, error)
        records.append(
            ValidationRecord(
                iteration=(k + 1) * frequency - 1,
                epoch=((k + 1) * frequency - 1) // 494 + 1,
                train_cost=1.0 / (k + 1),
                valid_error=error,
                valid_nll=0.5,
                test_error=error + 0.005 if is_best else None,
                is_best=is_best,
                patience=5000.0,
                seconds=float(k),
            )
        )
    n = len(valid) * frequency
    return History(
        records=records,
        train_costs=list(2.0 * np.exp(-np.arange(n) / 300) + 0.2),
        n_train_batches=494,
        validation_frequency=frequency,
        stopped_at=n - 1,
        stop_reason="patience ran out",
        mode="C",
        data_source="hand-made",
    )


def test_learning_curves_epoch_scale_has_whole_epochs_on_a_short_run():
    # 5 x 247 updates at 494 per epoch: 2.5 epochs, where matplotlib would tick every half epoch.
    fig = plot.learning_curves(_history())
    fig.canvas.draw()
    (epochs,) = fig.axes[0].child_axes
    ticks = [t for t in epochs.get_xticks() if epochs.get_xlim()[0] <= t <= epochs.get_xlim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_learning_curves_title_names_the_data_without_the_reason():
    history = _history()
    history.data_source = (
        "the 10,000-digit sample shipped in dlt_lib (no network: none of the 5 download URLs answered)"
    )
    title = plot.learning_curves(history).axes[0].get_title(loc="left")
    assert "data: the 10,000-digit sample shipped in dlt_lib" in title and "mode: C" in title
    assert "download" not in title


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _lines_through(ax, x, y):
    return [
        line
        for line in ax.get_lines()
        if np.any(np.isclose(line.get_xdata(), x) & np.isclose(np.asarray(line.get_ydata(), dtype=float), y))
    ]


def test_learning_curves_panels_and_best_point():
    history = _history()
    fig = plot.learning_curves(history)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # cost above, errors below (the epoch scale is a child of the top panel)
    ax_cost, ax_err = fig.axes
    best = history.best
    assert (best.iteration, best.valid_error) == (1234, 0.0749)
    stars = [line for line in ax_err.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1
    assert stars[0].get_xdata()[0] == 1234 and stars[0].get_ydata()[0] == pytest.approx(7.49)
    assert len(_lines_through(ax_err, 1234, 7.49)) >= 2  # the star and the validation curve
    # The validation curve is the records' errors in percent.
    valid_line = next(line for line in ax_err.get_lines() if line.get_label() == "validation error")
    np.testing.assert_allclose(valid_line.get_ydata(), 100 * history.column("valid_error"))
    assert "best: 7.49% valid at it. 1234, test 7.99%" in _legend_texts(ax_err)  # the star explained
    # The stop line, in both panels: dashed, every x at the stop iteration.
    for ax in (ax_cost, ax_err):
        stops = [
            line
            for line in ax.get_lines()
            if line.get_linestyle() == "--"
            and len(line.get_xdata())
            and np.all(np.asarray(line.get_xdata()) == history.stopped_at)
        ]
        assert len(stops) == 1
    assert "hand-made" in ax_cost.get_title(loc="left") and "mode: C" in ax_cost.get_title(loc="left")
    assert ax_cost.get_legend() is not None and ax_err.get_legend() is not None


def test_learning_curves_show_test_and_smoothing():
    history = _history()
    with_test = plot.learning_curves(history, smoothing=1).axes[1]
    test_lines = [line for line in with_test.get_lines() if line.get_label().startswith("test")]
    assert len(test_lines) == 1
    np.testing.assert_allclose(test_lines[0].get_xdata(), [246, 493, 740, 1234])
    np.testing.assert_allclose(test_lines[0].get_ydata(), [12.5, 9.5, 8.5, 7.99])
    without = plot.learning_curves(history, show_test=False).axes[1]
    assert not [line for line in without.get_lines() if line.get_label().startswith("test")]
    assert not any("test" in text for text in _legend_texts(without))
    # smoothing=25: the curve is the centred 25-update mean of the raw costs.
    ax_cost = plot.learning_curves(history, smoothing=25).axes[0]
    smooth = next(line for line in ax_cost.get_lines() if "moving average" in line.get_label())
    costs = np.array(history.train_costs)
    assert smooth.get_ydata()[100] == pytest.approx(costs[88:113].mean())


def test_moving_average_matches_a_loop_and_skips_nan():
    values = np.random.default_rng(6).normal(size=40)
    values[[3, 17]] = np.nan
    window = 7
    expected = [np.nanmean(values[max(0, i - 3) : i + 4]) for i in range(40)]
    np.testing.assert_allclose(plot.moving_average(values, window), expected)


def test_learning_curves_single_record_and_nans():
    record = ValidationRecord(99, 1, 0.5, 0.12, 0.4, 0.13, True, 5000.0, 1.0)
    single = History(records=[record], train_costs=[2.3, 1.0, 0.5], n_train_batches=100, stopped_at=99)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fig = plot.learning_curves(single)
        fig.canvas.draw()
    lo, hi = fig.axes[1].get_ylim()
    assert lo < 12 < 13 < hi and hi - lo >= 2  # the two points are inside a readable range
    assert any("best: 12.00% valid at it. 99" in text for text in _legend_texts(fig.axes[1]))

    history = _history(valid=(0.2, np.nan, 0.1, 0.15))
    history.train_costs[10] = np.nan
    history.train_costs[20] = np.inf
    history.records[0].train_cost = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fig = plot.learning_curves(history)
        fig.canvas.draw()
    valid_line = next(line for line in fig.axes[1].get_lines() if line.get_label() == "validation error")
    assert np.isnan(valid_line.get_ydata()[1])  # a gap, not a made-up value
    assert len(_lines_through(fig.axes[1], 740, 10.0)) >= 2
    # Nothing recorded at all.
    fig = plot.learning_curves(History())
    assert any("no training" in t.get_text() for t in fig.axes[1].texts)


def _small_history(valid, test):
    records = [
        ValidationRecord(10 * k + 9, 1, 1.0, v, 0.3, t, t is not None, 1e3, 1.0)
        for k, (v, t) in enumerate(zip(valid, test))
    ]
    return History(records=records, stopped_at=10 * len(valid) - 1, n_train_batches=100)


def _data_points_under(box, ax):
    """How many points along the plotted data lines of ``ax`` fall inside ``box`` (display coordinates)."""
    hits = 0
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if line.get_transform() is not ax.transData or len(xy) == 0:
            continue  # the stop line is drawn in axes coordinates for y: it may pass behind the note
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) > 1:
            t = np.linspace(0, 1, 50)[:, None, None]
            xy = (xy[:-1][None] + t * (xy[1:] - xy[:-1])[None]).reshape(-1, 2)
        pts = ax.transData.transform(xy)
        hits += int(
            ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)).sum()
        )
    return hits


@pytest.mark.parametrize(
    "history",
    [
        _history(),
        # The test error runs across the middle of the panel, where the note goes first.
        _small_history(
            [0.2, 0.06, 0.055, 0.054, 0.053, 0.052, 0.051, 0.05],
            [0.2, 0.12, 0.121, 0.122, 0.123, 0.124, 0.125, 0.126],
        ),
        # Over-fitting: the validation error climbs at the right.
        _small_history([0.2, 0.1, 0.05, 0.08, 0.12, 0.15, 0.18], [0.2, 0.1, 0.05, None, None, None, None]),
    ],
    ids=["hand-made", "test-band", "over-fitting"],
)
def test_best_note_hides_no_data(history):
    fig = plot.learning_curves(history)
    fig.canvas.draw()
    ax_err = fig.axes[1]
    assert any(text.startswith("best:") for text in _legend_texts(ax_err))
    assert _data_points_under(ax_err.get_legend().get_window_extent(), ax_err) == 0


def test_learning_curves_in_one_given_axes():
    fig, ax = plt.subplots()
    returned = plot.learning_curves(_history(), ax=ax, title="mine")
    assert returned is fig
    assert len(fig.axes) == 2 and fig.axes[0] is ax  # ax and its twin with the error scale
    assert fig.axes[1].get_ylabel() == "error (%)"
    assert ax.get_title(loc="left").startswith("mine")
    assert _lines_through(fig.axes[1], 1234, 7.49)


def test_style_does_not_leak_into_global_settings():
    before = {key: matplotlib.rcParams[key] for key in plot.STYLE}
    plot.learning_curves(_history())
    plot.show_tiles(np.random.default_rng(7).random((4, 784)))
    assert {key: matplotlib.rcParams[key] for key in plot.STYLE} == before
    assert any(
        matplotlib.rcParams[key] != value for key, value in plot.STYLE.items() if key != "axes.prop_cycle"
    )


# ----------------------------------------------------------------------------
# save_figure
# ----------------------------------------------------------------------------
def test_save_figure_png_reproducible(tmp_path):
    fig = plot.learning_curves(_history())
    first = plot.save_figure(fig, tmp_path / "a" / "b" / "curves.png")  # parents are created
    second = plot.save_figure(fig, tmp_path / "again.png")
    data = first.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert data == second.read_bytes()
    assert b"Matplotlib" not in data and b"Software" not in data
    # A figure built again from the same History gives the same file.
    third = plot.save_figure(plot.learning_curves(_history()), tmp_path / "rebuilt.png")
    assert third.read_bytes() == data
    image = plt.imread(first)
    assert image.shape[1] > 800  # book width at 150 dpi, not a thumbnail


def test_save_figure_same_bytes_for_a_figure_whose_layout_moves(tmp_path):
    # A colour bar next to an image makes constrained layout shift a pixel
    # between the first and second drawing: save_figure must not show that.
    fig = plot.plot_confusion_matrix([0, 1, 1, 2], [0, 1, 0, 2])
    first = plot.save_figure(fig, tmp_path / "first.png").read_bytes()
    assert plot.save_figure(fig, tmp_path / "second.png").read_bytes() == first
    rebuilt = plot.plot_confusion_matrix([0, 1, 1, 2], [0, 1, 0, 2])
    assert plot.save_figure(rebuilt, tmp_path / "rebuilt.png").read_bytes() == first


def test_save_figure_leaves_no_temporary_files(tmp_path):
    fig = plot.plot_confusion_matrix([0, 1, 1], [0, 1, 0])
    path = plot.save_figure(fig, tmp_path / "cm")
    assert path == tmp_path / "cm.png"
    plot.save_figure(fig, path)  # overwriting, too
    assert sorted(os.listdir(tmp_path)) == ["cm.png"]
    # The permissions any new file gets (not mkstemp's owner-only 0o600).
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_figure_failure_keeps_the_old_file(tmp_path, monkeypatch):
    fig = plot.show_tiles(np.random.default_rng(8).random((4, 784)))
    path = plot.save_figure(fig, tmp_path / "tiles.png")
    old = path.read_bytes()

    def broken_savefig(handle, **kwargs):
        handle.write(b"half a file")
        raise OSError("disk full")

    def broken_replace(source, destination):
        raise OSError("rename refused")

    # A failure while drawing, and one at the rename, after the temporary file was written.
    with monkeypatch.context() as patch:
        patch.setattr(fig, "savefig", broken_savefig)
        with pytest.raises(OSError, match="disk full"):
            plot.save_figure(fig, path)
    with monkeypatch.context() as patch:
        patch.setattr(files.os, "replace", broken_replace)
        with pytest.raises(OSError, match="rename refused"):
            plot.save_figure(fig, path)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["tiles.png"]
    with pytest.raises(ValueError, match="PNG"):
        plot.save_figure(fig, tmp_path / "tiles.pdf")


def test_show_tiles_writes_labels_under_images_and_beside_rows():
    X = np.random.default_rng(0).random((6, 784))
    fig = plot.show_tiles(X, tile_shape=(2, 3), labels=list("abcdef"), row_labels=["first", "second"])
    texts = {t.get_text(): t.get_position() for t in fig.axes[0].texts}
    assert set("abcdef") <= set(texts) and {"first", "second"} <= set(texts)
    # label k sits under image k: columns 28 + 1 px apart, rows 28 + 12 px apart (room for the text)
    assert texts["e"] == pytest.approx((1 * 29 + 14, 1 * 40 + 29))
    assert texts["second"][1] == pytest.approx(1 * 40 + 14) and texts["second"][0] < 0
    with pytest.raises(ValueError, match="one label per image"):
        plot.show_tiles(X, labels=["a"])
    with pytest.raises(ValueError, match="one row label per row"):
        plot.show_tiles(X, tile_shape=(2, 3), row_labels=["only one"])
