"""Pictures of training runs, digits, weights and mistakes.

Every chapter of the book ends a training run with the same few figures.
They live here, once, so that each chapter shows them the same way:

:func:`learning_curves`
    the training cost and the validation/test error against the number of
    minibatch updates, from the :class:`~dlt_lib.training.History` that
    :func:`dlt_lib.training.train` returns, with the best model and the
    early-stopping point marked.
:func:`tile_raster_images` and :func:`show_tiles`
    many small images (digits, or filters learnt by a layer) laid out in one
    grid: the tutorials' ``utils.tile_raster_images``, and a function that draws it.
:func:`show_weights`
    the weight vectors of a layer drawn as images, with a colour map that
    shows positive and negative weights in different colours.
:func:`confusion_matrix` and :func:`plot_confusion_matrix`
    which digits are mistaken for which.
:func:`save_figure`
    a PNG written atomically and byte-for-byte reproducibly, for the book.

Conventions shared by all of them:

- **Making**: each drawing function takes an optional ``ax`` (a Matplotlib
  ``Axes`` to draw into, e.g. one panel of your own figure); without it, it
  makes a new ``pyplot`` figure sized for the book's page width.
- **Returning**: it returns the ``Figure``.
- **Showing**: nothing here calls ``plt.show()``.  In a notebook, Matplotlib
  shows every figure made in a cell, once, when the cell ends: write
  ``fig = learning_curves(h)``, and do not also end the cell with ``fig``
  (the cell's value would show it a second time).  In a script, call
  ``plt.show()`` or :func:`save_figure`.
- **Look**: :data:`STYLE`, put in force by :func:`style` only while a
  function draws; :func:`style` restores only what it changed, so it never
  turns off the interactive mode that makes a notebook show its figures
  (``plt.rc_context`` can).  Use ``with plot.style():`` for your own figures.
  Importing this module changes none of your Matplotlib settings.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import textwrap
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler

from dlt_lib.data import short_source
from dlt_lib.files import write_atomically
from dlt_lib.validation import InvalidParameterError

__all__ = [
    "COLORS",
    "STYLE",
    "confusion_matrix",
    "learning_curves",
    "moving_average",
    "plot_confusion_matrix",
    "save_figure",
    "scale_to_unit_interval",
    "show_tiles",
    "show_weights",
    "style",
    "tile_raster_images",
]

# ----------------------------------------------------------------------------
# Style
# ----------------------------------------------------------------------------
#: The colours of the book: the Okabe-Ito palette, which stays distinct for
#: readers with the common forms of colour blindness and in greyscale print.
COLORS = {
    "train": "#0072B2",  # blue
    "valid": "#D55E00",  # vermilion
    "test": "#009E73",  # bluish green
    "best": "#E69F00",  # orange
    "stop": "#555555",  # grey
    "faint": "#9DB9D3",  # a light blue for the raw, unsmoothed training cost
}

#: Matplotlib settings used while a function of this module draws.  Change an
#: entry (``plot.STYLE["font.size"] = 12``) to change every later figure.
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titlelocation": "left",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.prop_cycle": cycler(color=["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9"]),
    "grid.color": "#E3E3E3",
    "grid.linewidth": 0.7,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "legend.frameon": True,
    "legend.framealpha": 0.9,
    "legend.edgecolor": "#DDDDDD",
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "image.interpolation": "nearest",  # one pixel of a digit = one square, never blurred
}

#: Width of a figure that fills the book's text column, in inches.
BOOK_WIDTH = 7.5


@contextlib.contextmanager
def style(**overrides):
    """Draw with the book's look: :data:`STYLE` (and ``overrides``) in force inside the block.

    Use it for a figure of your own in a chapter::

        with plot.style():
            fig, ax = plt.subplots()
            ...

    Unlike ``plt.rc_context(STYLE)``, it restores only the settings it
    changed (used for the chapters' own figures, e.g. in ``book/early_stopping.ipynb``).  ``rc_context`` restores *all* of them, ``interactive`` included:
    when a notebook's first figure is made inside it, Matplotlib picks the
    inline backend there, which turns interactive mode on, and leaving the
    context turns it off again, so that no later figure reaches the page.
    """
    changed = {**STYLE, **overrides}
    saved = {key: mpl.rcParams[key] for key in changed}
    mpl.rcParams.update(changed)
    try:
        yield
    finally:
        mpl.rcParams.update(saved)


def _styled(function):
    """Run ``function`` inside :func:`style`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with style():
            return function(*args, **kwargs)

    return wrapper


def _root_figure(ax):
    """The top-level Figure that ``ax`` belongs to (an Axes may sit in a SubFigure)."""
    figure = ax.figure
    return getattr(figure, "figure", None) or figure


# ----------------------------------------------------------------------------
# Learning curves
# ----------------------------------------------------------------------------
def _finite_or_nan(values) -> np.ndarray:
    """``values`` as floats, with None, inf and -inf replaced by NaN (a gap in a plotted line)."""
    array = np.array([np.nan if v is None else v for v in values], dtype=float)
    array[~np.isfinite(array)] = np.nan
    return array


def moving_average(values, window: int) -> np.ndarray:
    """Centred moving average of ``values`` over ``window`` points, ignoring NaNs.

    Near the ends the window is cut short, so the result has the length of
    the input and no edge effects.  Computed with cumulative sums, so it takes
    the same time whatever the window (a million updates in a few ms).
    See ``book/saving_and_plotting.ipynb``.
    """
    values = np.asarray(values, dtype=float)
    if window <= 1 or values.size == 0:
        return values.copy()
    ok = np.isfinite(values)
    # sums[i] = sum of the first i values; a window [a, b) sums to sums[b] - sums[a].
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    half = window // 2
    index = np.arange(values.size)
    lo = np.clip(index - half, 0, values.size)
    hi = np.clip(index + half + 1, 0, values.size)
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / n, np.nan)


def _auto_window(n_updates: int, n_train_batches: int) -> int:
    """About 2% of the run, at most one epoch, and odd (so the window is centred)."""
    window = max(1, n_updates // 50)
    if n_train_batches > 0:
        window = min(window, n_train_batches)
    return window if window % 2 else window + 1


def _split_axes(ax):
    """Return (figure, cost_axes, error_axes) for the layouts learning_curves accepts."""
    if ax is None:
        fig, (ax_cost, ax_err) = plt.subplots(
            2, 1, sharex=True, figsize=(BOOK_WIDTH, 5.4), layout="constrained", height_ratios=(1, 1.15)
        )
        return fig, ax_cost, ax_err
    if isinstance(ax, (tuple, list, np.ndarray)):
        if len(ax) != 2:
            raise InvalidParameterError(
                f"ax must be one Axes or a pair (cost axes, error axes); got {len(ax)} axes."
            )
        return _root_figure(ax[0]), ax[0], ax[1]
    # One Axes: the cost on its left scale, the errors on a second scale at the right.
    ax_err = ax.twinx()
    ax_err.spines["right"].set_visible(True)
    ax_err.grid(False)
    return _root_figure(ax), ax, ax_err


def _plot_costs(ax, history, smoothing) -> None:
    """The training cost: every update (faint), its moving average, and the mean between validations."""
    costs = _finite_or_nan(history.train_costs)
    records = history.records
    if costs.size:
        steps = np.arange(costs.size)
        window = (
            _auto_window(costs.size, history.n_train_batches) if smoothing is None else max(1, int(smoothing))
        )
        if window > 1 and costs.size > window:
            ax.plot(steps, costs, color=COLORS["faint"], lw=0.6, alpha=0.7, label="cost of each update")
            ax.plot(
                steps,
                moving_average(costs, window),
                color=COLORS["train"],
                label=f"moving average over {window} updates",
            )
        else:
            ax.plot(steps, costs, color=COLORS["train"], lw=1.0, label="cost of each update")
    if records and (not costs.size or len(records) <= 60):
        # Dots over the curve above, or the only curve when the History has no
        # per-update costs (more than 60 dots would just smear).
        ax.plot(
            [r.iteration for r in records],
            _finite_or_nan([r.train_cost for r in records]),
            color="#1B2A41" if costs.size else COLORS["train"],
            ls="none" if costs.size else "-",
            marker="o",
            ms=3.5,
            label="mean cost between validations",
        )
    ax.set_ylabel("training cost")


def _plot_errors(ax, history, show_test) -> np.ndarray:
    """Validation and test errors in percent, and the best model as a star; returns the values drawn."""
    records = history.records
    iterations = np.array([r.iteration for r in records], dtype=float)
    valid = 100 * _finite_or_nan([r.valid_error for r in records])
    test = 100 * _finite_or_nan([r.test_error for r in records])
    marker = "" if len(records) > 60 else "o"  # markers on every point would make a thick smear
    ax.plot(iterations, valid, color=COLORS["valid"], marker=marker, ms=3, label="validation error")
    measured = np.isfinite(test) if show_test else np.zeros(len(records), bool)
    if measured.any():
        # Measured only at a new best: a step function, the test error of the best model so far.
        ax.plot(
            iterations[measured],
            test[measured],
            color=COLORS["test"],
            ls=":",
            drawstyle="steps-post",
            marker="s",
            ms=3.5,
            label="test error (at each new best)",
        )
    best = history.best
    if best is not None and math.isfinite(best.valid_error):
        # The note goes in the legend, which Matplotlib places where it hides no data.
        note = f"best: {100 * best.valid_error:.2f}% valid at it. {best.iteration}"
        if show_test and best.test_error is not None and math.isfinite(best.test_error):
            note += f", test {100 * best.test_error:.2f}%"
        ax.plot(
            [best.iteration],
            [100 * best.valid_error],
            ls="none",
            marker="*",
            ms=15,
            color=COLORS["best"],
            mec="black",
            mew=0.6,
            zorder=5,
            gid="best",
            label=note,
        )
    ax.set_ylabel("error (%)")
    return np.concatenate([valid, test[measured]])


def _mark_stop(ax_cost, ax_err, history, layout) -> None:
    """A dashed vertical line where training stopped, explained once in the cost legend."""
    stopped_at = history.stopped_at
    if stopped_at is None or stopped_at < 0:
        return
    for axes in (ax_cost,) if layout == "one" else (ax_cost, ax_err):
        axes.axvline(stopped_at, color=COLORS["stop"], ls="--", lw=1.0, zorder=1)
    ax_cost.plot([], [], color=COLORS["stop"], ls="--", lw=1.0, label=f"training stopped (it. {stopped_at})")


def _set_scales(ax_cost, ax_err, history, shown) -> None:
    """Integer iteration ticks, and a readable range when there is (nearly) nothing to scale to."""
    for axes in (ax_cost, ax_err):
        axes.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        axes.xaxis.set_major_formatter(mpl.ticker.StrMethodFormatter("{x:,.0f}"))  # 2,500 not 2.5e3
    ax_err.set_xlabel("iteration (minibatch updates)")
    ax_err.margins(y=0.08)
    shown = shown[np.isfinite(shown)]
    if shown.size and np.ptp(shown) < 2.0:
        ax_err.set_ylim(max(0.0, shown.min() - 1.5), shown.max() + 1.5)
    iterations = {r.iteration for r in history.records}
    if len(iterations) <= 1:
        last = max([history.stopped_at, len(history.train_costs) - 1, *iterations, 1])
        ax_err.set_xlim(-0.02 * last, 1.05 * last)
    if not history.records and not history.train_costs:
        ax_err.text(
            0.5, 0.5, "no training recorded", transform=ax_err.transAxes, ha="center", color="#777777"
        )
        ax_err.set_ylim(0, 100)


def _add_legends(ax_cost, ax_err, history, layout) -> None:
    """Legends where they hide the least, and an epoch scale above a figure of our own."""
    if layout == "one":
        # Both scales share one panel: one legend, underneath, out of the way.
        ax_cost.set_xlabel("iteration (minibatch updates)")
        handles = ax_cost.get_legend_handles_labels()[0] + ax_err.get_legend_handles_labels()[0]
        ax_cost.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncols=2,
            frameon=False,
            fontsize=8,
        )
        return
    # The cost falls, so its upper right is free; the errors may end anywhere.
    if ax_cost.get_legend_handles_labels()[0]:
        ax_cost.legend(loc="upper right")
    if ax_err.get_legend_handles_labels()[0]:
        ax_err.legend(loc="best")
    n_batches = history.n_train_batches
    if layout == "new" and n_batches > 0:
        # "iteration it is done" means (it + 1) / n_train_batches epochs are done.
        epochs = ax_cost.secondary_xaxis(
            "top", functions=(lambda it: (it + 1) / n_batches, lambda ep: ep * n_batches - 1)
        )
        epochs.set_xlabel("epoch", fontsize=8.5, color="#555555")
        # Whole epochs only: a short run would otherwise get 0.5, 1.0, 1.5, ...
        epochs.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        epochs.tick_params(labelsize=8, colors="#555555")


def _heading(title, history) -> str:
    """The title, with the data source and the PyTensor mode of the run when the History records them."""
    heading = "Learning curves" if title is None else title
    # The cell that loaded the data printed the whole source; a title must fit.
    source = short_source(history.data_source or "")
    parts = [f"data: {source}"] if source else []
    parts += [f"mode: {history.mode}"] if history.mode else []
    if not parts:
        return heading
    context = "  ·  ".join(parts)
    joined = f"{heading}  —  {context}"
    return joined if len(joined) <= 95 else heading + "\n" + textwrap.shorten(context, 110, placeholder=" …")


@_styled
def learning_curves(history, ax=None, title=None, show_test=True, smoothing=None):
    """Plot the training cost and the validation (and test) error of a run.

    Parameters
    ----------
    history : dlt_lib.training.History
        What :func:`dlt_lib.training.train` returned.
    ax : None, an Axes, or a pair of Axes
        None: a new figure with two panels sharing the iteration axis, the
        cost above and the errors below, with an epoch scale on top.  One
        Axes: both in it, the errors on a second y scale at the right.  A
        pair: (cost panel, error panel).
    title : str, optional
        Default "Learning curves".  The data source and the PyTensor mode of
        the run are added when the History records them.
    show_test : bool
        Also plot the test error, which the tutorials measure only at each
        new best validation error (so it appears as separate points).
    smoothing : int, optional
        Width, in updates, of the moving average drawn over the per-update
        training cost.  None picks about 2% of the run (at most one epoch);
        1 draws the raw per-update cost alone.

    Returns
    -------
    matplotlib.figure.Figure

    The x axis counts minibatch updates (iterations, from 0, as in the
    History).  The best validation error is marked with a star, explained in
    the legend, and the iteration at which training stopped with a dashed
    vertical line.  Taught in ``book/saving_and_plotting.ipynb``.
    """
    fig, ax_cost, ax_err = _split_axes(ax)
    layout = "new" if ax is None else "pair" if isinstance(ax, (tuple, list, np.ndarray)) else "one"
    _plot_costs(ax_cost, history, smoothing)
    shown = _plot_errors(ax_err, history, show_test)
    _mark_stop(ax_cost, ax_err, history, layout)
    _set_scales(ax_cost, ax_err, history, shown)
    _add_legends(ax_cost, ax_err, history, layout)
    ax_cost.set_title(_heading(title, history))
    return fig


# ----------------------------------------------------------------------------
# Images in a grid
# ----------------------------------------------------------------------------
def _as_images(X, img_shape) -> np.ndarray:
    """``X`` (one image per row, or already (n, height, width)) as float images (n, height, width)."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[None, :]
    height, width = (int(s) for s in img_shape)
    if X.ndim == 3 and X.shape[1:] == (height, width):
        return X.astype(float)
    if X.ndim != 2:
        raise InvalidParameterError(
            f"X must hold one image per row, shape (n_images, {height * width}); got shape {X.shape}."
        )
    if X.shape[1] != height * width:
        raise InvalidParameterError(
            f"Each row of X must have {height}*{width}={height * width} pixels for img_shape={tuple(img_shape)}; "
            f"X has rows of {X.shape[1]}."
        )
    return X.reshape(len(X), height, width).astype(float)


def scale_to_unit_interval(image) -> np.ndarray:
    """Map the smallest value of ``image`` to 0 and the largest to 1.

    A constant image has no range to stretch: it maps to all zeros instead
    of a division by zero.  NaNs are ignored and come out as 0.
    See ``book/dataset.ipynb``.
    """
    image = np.asarray(image, dtype=float)
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros_like(image)
    lo, hi = image[finite].min(), image[finite].max()
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return np.where(finite, scaled, 0.0)


def _tile_shape_for(n_images: int) -> tuple[int, int]:
    """A grid about as wide as it is high: 10 images -> 3 x 4, 100 -> 10 x 10."""
    cols = max(1, math.ceil(math.sqrt(n_images)))
    rows = max(1, math.ceil(n_images / cols))
    return rows, cols


def _mosaic(images, tile_shape, tile_spacing, fill=np.nan) -> np.ndarray:
    """Lay ``images`` (n, h, w) out row by row on a grid; gaps and empty tiles get ``fill``.

    Images beyond ``rows * cols`` are left out, as in the tutorials.
    """
    n, h, w = images.shape
    rows, cols = (int(t) for t in tile_shape)
    space_y, space_x = (int(s) for s in tile_spacing)
    if rows < 1 or cols < 1 or space_y < 0 or space_x < 0:
        raise InvalidParameterError(
            f"tile_shape must be positive and tile_spacing >= 0; got {tile_shape}, {tile_spacing}."
        )
    # (image size + gap) per tile, minus the gap after the last tile.
    out = np.full(((h + space_y) * rows - space_y, (w + space_x) * cols - space_x), fill, dtype=float)
    for k in range(min(n, rows * cols)):
        row, col = divmod(k, cols)
        top, left = row * (h + space_y), col * (w + space_x)
        out[top : top + h, left : left + w] = images[k]
    return out


def _tiles_in_unit_interval(X, img_shape, tile_shape, tile_spacing, scale_rows_to_unit_interval):
    """The float mosaic behind tile_raster_images and show_tiles: pixels in [0, 1], NaN in the gaps."""
    images = _as_images(X, img_shape)
    integer_input = np.issubdtype(np.asarray(X).dtype, np.integer)
    if scale_rows_to_unit_interval:
        images = np.stack([scale_to_unit_interval(image) for image in images]) if len(images) else images
    elif integer_input:
        images = np.clip(images, 0, 255) / 255.0  # uint8 pixels, as stored in MNIST files
    else:
        images = np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0)  # already intensities in [0, 1]
    if tile_shape is None:
        tile_shape = _tile_shape_for(len(images))
    return _mosaic(images, tile_shape, tile_spacing, fill=np.nan)


def tile_raster_images(
    X, img_shape=(28, 28), tile_shape=None, tile_spacing=(1, 1), scale_rows_to_unit_interval=True
) -> np.ndarray:
    """Arrange the rows of ``X`` as small images in one big greyscale image.

    This is ``utils.tile_raster_images`` of the Deep Learning Tutorials, used
    there to look at MNIST digits and at the filters learnt by RBMs and
    autoencoders.

    Parameters
    ----------
    X : array (n_images, height * width)
        One flattened image per row (or an array (n_images, height, width)).
    img_shape : (height, width)
    tile_shape : (rows, cols), optional
        The grid.  Default: about square, big enough for every image.  With
        a smaller grid, only the first ``rows * cols`` images are shown.
    tile_spacing : (rows, cols)
        Pixels of black between two neighbouring images.
    scale_rows_to_unit_interval : bool
        Stretch each image separately so its smallest value is black and its
        largest white (needed for weights, which are not pixel values).  A
        constant image becomes black.  When False, float images must already
        hold intensities in [0, 1] (values outside are clipped) and integer
        images pixel values in 0..255.

    Returns
    -------
    numpy.ndarray of uint8, shape ``((height + gap) * rows - gap, (width + gap) * cols - gap)``
        0 is black, 255 white.  Image ``k`` is at grid row ``k // cols``,
        column ``k % cols``, with its values rounded to the nearest 1/255.
    Taught in ``book/dataset.ipynb``.
    """
    mosaic = _tiles_in_unit_interval(X, img_shape, tile_shape, tile_spacing, scale_rows_to_unit_interval)
    return np.round(np.nan_to_num(mosaic, nan=0.0) * 255).astype(np.uint8)


def _image_figure(pixel_height, pixel_width, max_width=BOOK_WIDTH, pixels_per_inch=40, extra_height=0.4):
    """A new figure sized so that a mosaic of that many pixels reads well."""
    width = min(max_width, max(2.5, pixel_width / pixels_per_inch))
    height = width * pixel_height / pixel_width + extra_height
    return plt.subplots(figsize=(width, height), layout="constrained")


@_styled
def show_tiles(
    X,
    img_shape=(28, 28),
    tile_shape=None,
    tile_spacing=(1, 1),
    scale_rows_to_unit_interval=True,
    ax=None,
    title=None,
    cmap="gray",
    labels=None,
    row_labels=None,
):
    """Draw the rows of ``X`` as a grid of images (see :func:`tile_raster_images`).

    The gaps between images are drawn in the page's colour, so the images
    stand apart whatever their own background.  ``labels`` (one string per
    image) are written under the images, ``row_labels`` (one per row of the
    grid) to the left of the rows.  Returns the Figure.
    Taught in ``book/dataset.ipynb``.
    """
    H, W = img_shape
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(X):
            raise InvalidParameterError(f"Expected one label per image ({len(X)}); got {len(labels)}.")
        tile_spacing = (max(tile_spacing[0], 12), tile_spacing[1])  # room for a line of text under each row
    mosaic = _tiles_in_unit_interval(X, img_shape, tile_shape, tile_spacing, scale_rows_to_unit_interval)
    row_step, col_step = H + tile_spacing[0], W + tile_spacing[1]
    n_rows, n_cols = (
        (mosaic.shape[0] + tile_spacing[0]) // row_step,
        (mosaic.shape[1] + tile_spacing[1]) // col_step,
    )
    if row_labels is not None and len(row_labels) != n_rows:
        raise InvalidParameterError(
            f"Expected one row label per row of the grid ({n_rows}); got {len(row_labels)}."
        )
    # The same rounding as tile_raster_images, so the picture shows exactly its pixels.
    pixels = np.ma.masked_invalid(np.round(mosaic * 255))
    if ax is None:
        fig, ax = _image_figure(*mosaic.shape, max_width=6.0, extra_height=0.4 if title else 0.1)
    else:
        fig = _root_figure(ax)
    colormap = mpl.colormaps[cmap].with_extremes(bad=fig.get_facecolor()) if isinstance(cmap, str) else cmap
    ax.imshow(pixels, cmap=colormap, vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if labels is not None:
        for k, text in enumerate(labels[: n_rows * n_cols]):
            row, col = divmod(k, n_cols)
            ax.text(col * col_step + W / 2, row * row_step + H + 1, text, ha="center", va="top", fontsize=7.5)
        ax.set_ylim(n_rows * row_step, -1)  # keep the last row's labels inside the picture
    if row_labels is not None:
        for row, text in enumerate(row_labels):
            ax.text(-4, row * row_step + H / 2, text, ha="right", va="center")
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------
# Weights as images
# ----------------------------------------------------------------------------
@_styled
def show_weights(
    W,
    img_shape=(28, 28),
    class_names=None,
    ax=None,
    fig=None,
    title=None,
    cmap="RdBu_r",
    ncols=5,
    max_panels=20,
    tile_spacing=(1, 1),
    vmax=None,
):
    """Show the weight vector of each output unit as an image.

    For logistic regression, column ``j`` of ``W`` (shape ``(784, 10)``)
    holds the weight of each pixel in the score of class ``j``: red pixels
    are evidence *for* the class, blue ones evidence *against* it, white
    ones do not matter.  One colour scale, centred at zero, serves all the
    images, so their strengths can be compared.

    Parameters
    ----------
    W : array (height * width, k), or a shared variable holding one
    class_names : list of str, optional
        A label for each column (default: its index).
    ax : Axes, optional
        Draw all the columns as one tiled image in this Axes.
    fig : Figure, optional
        Draw one panel per column in this (empty) figure.
    cmap : a diverging colour map (white in the middle)
    ncols : panels per row in the one-panel-per-column layout.
    max_panels : more columns than this (e.g. 500 hidden units) are tiled
        into one image, without labels, separated by dark grey lines.
    vmax : float, optional
        The weight drawn in the strongest colour (and ``-vmax`` in the
        strongest opposite one).  Default: the largest ``abs(W)``.

    Returns the Figure.
    Taught in ``book/regularization.ipynb``.
    """
    W = np.asarray(W.get_value() if hasattr(W, "get_value") else W, dtype=float)
    height, width = (int(s) for s in img_shape)
    if W.ndim != 2 or W.shape[0] != height * width:
        raise InvalidParameterError(
            f"W must have shape ({height * width}, n_units): one column of {height}x{width} weights per unit; "
            f"got shape {W.shape}. (For a matrix stored the other way round, pass W.T.)"
        )
    k = W.shape[1]
    if k == 0:
        raise InvalidParameterError("W has no columns: there are no weight vectors to show.")
    if class_names is not None and len(class_names) != k:
        raise InvalidParameterError(f"class_names has {len(class_names)} names for {k} columns of W.")
    images = W.T.reshape(k, height, width)
    finite = np.abs(W[np.isfinite(W)])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    limit = limit if vmax is None else float(vmax)
    norm = mpl.colors.Normalize(vmin=-limit, vmax=limit)  # symmetric: zero is the middle (white) colour
    colormap = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap

    if ax is not None or k > max_panels:
        return _weights_in_one_image(images, ax, norm, colormap, tile_spacing, title)
    return _weights_one_panel_each(images, fig, norm, colormap, ncols, class_names, title)


def _weights_in_one_image(images, ax, norm, colormap, tile_spacing, title):
    """All the weight images tiled in one picture.  The gaps are dark grey: white would look like weights of zero."""
    k = len(images)
    mosaic = _mosaic(images, _tile_shape_for(k), tile_spacing)
    if ax is None:
        side = min(5.6, max(2.5, mosaic.shape[1] / 50))  # the image's width, in inches
        size = (side + 1.3, side * mosaic.shape[0] / mosaic.shape[1] + 0.45)
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    else:
        fig = _root_figure(ax)
    masked = np.ma.masked_invalid(mosaic)
    shown = ax.imshow(masked, cmap=colormap.with_extremes(bad="#505050"), norm=norm, interpolation="nearest")
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, shrink=0.9, label="weight", aspect=30)
    ax.set_title(title if title is not None else f"Weights of {k} units")
    return fig


def _weights_one_panel_each(images, fig, norm, colormap, ncols, class_names, title):
    """One labelled panel per weight image, and one colour bar.

    The panels are placed by hand, in inches, rather than by a layout engine:
    images of fixed aspect plus a shared colour bar make Matplotlib's
    constrained layout move a little at every draw, and a saved figure should
    not depend on how often it was drawn before.
    """
    k = len(images)
    ncols = max(1, min(int(ncols), k))
    nrows = math.ceil(k / ncols)
    margin, gap, label, heading = 0.08, 0.12, 0.28, 0.3  # inches
    colorbar_room = 0.25 + 0.14 + 0.7  # gap, bar, tick labels and "weight"
    if fig is None:
        panel = (BOOK_WIDTH - 2 * margin - (ncols - 1) * gap - colorbar_room) / ncols
        fig = plt.figure(figsize=(BOOK_WIDTH, heading + nrows * (label + panel) + (nrows - 1) * gap + margin))
    fig_w, fig_h = fig.bbox.width / fig.dpi, fig.bbox.height / fig.dpi
    panel = min(
        (fig_w - 2 * margin - (ncols - 1) * gap - colorbar_room) / ncols,
        (fig_h - heading - margin - nrows * label - (nrows - 1) * gap) / nrows,
    )
    if panel <= 0:
        raise InvalidParameterError(f"The figure ({fig_w:.1f} x {fig_h:.1f} in) is too small for {k} panels.")

    def rect(left, top, width, height):  # inches from the top left -> figure fractions
        return [left / fig_w, 1 - (top + height) / fig_h, width / fig_w, height / fig_h]

    for j in range(k):
        row, col = divmod(j, ncols)
        top = heading + row * (label + panel + gap) + label
        panel_ax = fig.add_axes(rect(margin + col * (panel + gap), top, panel, panel))
        shown = panel_ax.imshow(images[j], cmap=colormap, norm=norm, interpolation="nearest")
        panel_ax.set_axis_off()
        name = str(class_names[j]) if class_names is not None else str(j)
        panel_ax.set_title(name, loc="center", fontsize=9.5, pad=3)
    grid_right = margin + ncols * panel + (ncols - 1) * gap
    grid_height = nrows * (label + panel) + (nrows - 1) * gap - label
    colorbar_ax = fig.add_axes(rect(grid_right + 0.25, heading + label, 0.14, grid_height))
    fig.colorbar(shown, cax=colorbar_ax, label="weight")
    title = title if title is not None else "Weights of each class (red: for, blue: against)"
    fig.suptitle(title, x=margin / fig_w, y=1 - 0.08 / fig_h, ha="left", va="top", fontsize=10.5)
    return _root_figure(colorbar_ax)


# ----------------------------------------------------------------------------
# Confusion matrix
# ----------------------------------------------------------------------------
def _as_labels(y, name) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidParameterError(f"{name} must be a 1-d array of class labels; got shape {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if y.dtype == bool or not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
            raise InvalidParameterError(f"{name} must hold integer class labels; got dtype {y.dtype}.")
        if not np.all(y == np.round(y)):
            raise InvalidParameterError(
                f"{name} must hold integer class labels; got non-integer values such as {y[y != np.round(y)][0]}. "
                "(Pass the predicted classes, e.g. probabilities.argmax(axis=1), not probabilities.)"
            )
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise InvalidParameterError(f"Class labels must be >= 0; {name} contains {y.min()}.")
    return y


def confusion_matrix(y_true, y_pred, n_classes=None) -> np.ndarray:
    """Count how often each true class was predicted as each class.

    ``C[i, j]`` is the number of examples of true class ``i`` predicted as
    class ``j``: the diagonal holds the correct answers, each row sums to the
    number of examples of that class, and ``1 - trace(C) / C.sum()`` is the
    error rate.

    Parameters
    ----------
    y_true, y_pred : 1-d integer arrays of the same length
    n_classes : int, optional
        Default: the largest label seen, plus one.

    Returns
    -------
    numpy.ndarray of int64, shape (n_classes, n_classes)
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise InvalidParameterError(
            f"y_true and y_pred must have one label per example each; got {len(y_true)} and {len(y_pred)}."
        )
    largest = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)))
    if n_classes is None:
        n_classes = largest + 1
    n_classes = int(n_classes)
    if largest >= n_classes:
        raise InvalidParameterError(
            f"Label {largest} is out of range for n_classes={n_classes} (labels are 0..n_classes-1)."
        )
    # Each pair (i, j) gets its own number i * n + j; counting those numbers
    # counts the pairs, in one pass and without a Python loop.
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _write_cells(ax, image, counts, values, normalize) -> None:
    """The count (or percentage) in each cell, grey for zero, black or white by the cell's brightness."""
    n = len(counts)
    fontsize = 8.5 if n <= 12 else max(5.0, 8.5 - 0.25 * (n - 12))
    for (i, j), value in np.ndenumerate(values):
        text = f"{value:.1f}" if normalize else f"{counts[i, j]:d}"
        color = "#B0B0B0" if counts[i, j] == 0 else _text_color(image.cmap(image.norm(value)))
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)


def _text_color(rgba) -> str:
    """Black on light cells, white on dark ones (by the cell colour's perceived brightness)."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


@_styled
def plot_confusion_matrix(
    y_true, y_pred, class_names=None, ax=None, normalize=False, title=None, cmap="Blues", n_classes=None
):
    """Draw the confusion matrix of a classifier, with the count in each cell.

    Parameters
    ----------
    y_true, y_pred : 1-d integer arrays (see :func:`confusion_matrix`)
    class_names : list of str, optional
        Tick labels for the classes (default: 0, 1, 2, ...).
    ax : Axes, optional
    normalize : bool
        Show each row as percentages of that true class (how each class's
        examples were classified) instead of counts.
    title : str, optional
        Default: the number of examples and the error rate.
    cmap : colour map for the cells.

    Returns the Figure.
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    if class_names is not None and n_classes is None:
        n_classes = len(class_names)
    counts = confusion_matrix(y_true, y_pred, n_classes)
    n = counts.shape[0]
    if class_names is not None and len(class_names) != n:
        raise InvalidParameterError(f"class_names has {len(class_names)} names for {n} classes.")
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = 100.0 * counts / np.maximum(totals, 1)  # a class with no examples gives a row of 0, not NaN
    else:
        values = counts.astype(float)

    if ax is None:
        size = min(BOOK_WIDTH * 0.8, max(3.5, 0.5 * n + 1.5))
        fig, ax = plt.subplots(figsize=(size + 0.9, size), layout="constrained")
    else:
        fig = _root_figure(ax)
    image = ax.imshow(
        values, cmap=cmap, vmin=0, vmax=max(values.max(initial=0), 1e-12), interpolation="nearest"
    )
    cbar = fig.colorbar(image, ax=ax, shrink=0.8)
    cbar.set_label("% of the true class" if normalize else "number of examples")

    if n <= 30:  # the numbers, if there is room for them
        _write_cells(ax, image, counts, values, normalize)
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    if names and max(len(name) for name in names) > 3:
        ax.tick_params(axis="x", labelrotation=45)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    if title is None:
        total = int(counts.sum())
        error = 100.0 * (1 - np.trace(counts) / total) if total else float("nan")
        title = f"Confusion matrix: {total:,} examples, {error:.2f}% error"
    ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------
def _render_png(fig, options) -> bytes:
    """The PNG bytes of ``fig``, drawn until the drawing stops changing.

    A layout engine (constrained layout, ``bbox_inches="tight"``) places the
    axes again at each draw, starting from where the previous draw left them,
    so the first drawing at a new dpi can differ by a pixel from the next
    ones.  Drawing until two drawings agree (usually twice) gives bytes that
    do not depend on what was drawn before.
    """
    previous = None
    for _ in range(6):
        buffer = io.BytesIO()
        fig.savefig(buffer, **options)
        data = buffer.getvalue()
        if data == previous:
            break
        previous = data
    return data


def save_figure(fig, path, dpi=150, **savefig_kwargs) -> Path:
    """Save ``fig`` as a PNG at ``path``, atomically and reproducibly.

    - The parent directory is created if needed.
    - The image is written to a temporary file in the same directory, which
      is then renamed over ``path`` (``os.replace``): a reader never sees
      half a file, and a failure leaves any earlier file untouched.
    - Matplotlib's "Software" tag (its version) is left out of the PNG, and
      the figure is drawn until its layout has settled (see ``_render_png``),
      so the same figure gives the same bytes, and a rebuilt book changes
      only the images whose content changed.

    ``path`` gets a ``.png`` suffix if it has none; other formats are
    refused.  Extra keyword arguments go to ``fig.savefig``.  Returns the
    path written.
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    path = Path(path)
    if path.suffix == "":
        path = path.with_name(path.name + ".png")
    if path.suffix.lower() != ".png":
        raise InvalidParameterError(
            f"save_figure writes PNG files; got {path.name!r}. Use a name ending in .png."
        )
    options = {"dpi": dpi, "bbox_inches": "tight", "pad_inches": 0.05, **savefig_kwargs, "format": "png"}
    options["metadata"] = {"Software": None, **savefig_kwargs.get("metadata", {})}
    # Drawn before any file is made: a failure while drawing leaves nothing behind.
    return write_atomically(path, _render_png(fig, options))
