"""Optimizer trajectories on 2-D surfaces, and the explorer widget."""

import matplotlib
import numpy as np
import pytest

from dlt_lib import widgets

matplotlib.use("Agg")


def test_sgd_on_the_ravine_matches_the_closed_form():
    # loss = (x^2 + 20 y^2) / 20 has gradient (x / 10, 2 y): each SGD step scales x by 1 - lr/10 and y by 1 - 2 lr
    lr, steps = 0.3, 12
    path = widgets.trajectory("ravine", "sgd", lr, steps)
    x0, y0 = widgets.SURFACES["ravine"].start
    t = np.arange(steps + 1)
    np.testing.assert_allclose(path[:, 0], x0 * (1 - lr / 10) ** t, rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], y0 * (1 - 2 * lr) ** t, rtol=1e-12)


def test_state_is_reset_between_runs_and_divergence_is_cut_short():
    first = widgets.trajectory("rosenbrock", "adam", 0.05, 40)
    again = widgets.trajectory("rosenbrock", "adam", 0.05, 40)
    np.testing.assert_array_equal(first, again)  # Adam's moments and step counter start from zero each time
    diverged = widgets.trajectory("ravine", "sgd", 5.0, 300)  # |1 - 2*5| = 9 > 1: y explodes
    assert len(diverged) < 301
    with pytest.raises(ValueError, match="surface must be one of"):
        widgets.trajectory("moon", "sgd", 0.1, 3)


def test_plot_and_explorer():
    paths = {
        "sgd": widgets.trajectory("ravine", "sgd", 0.5, 10),
        "momentum": widgets.trajectory("ravine", "momentum", 0.1, 10),
    }
    fig = widgets.plot_trajectories("ravine", paths)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("sgd") for label in labels) and any(
        label.startswith("momentum") for label in labels
    )
    panel = widgets.optimizer_explorer(steps=5)
    controls, out = panel.children
    assert len(out.outputs) == 1  # the first figure is drawn straight away
    slider = controls.children[0].children[2]
    slider.value = 7  # moving a control redraws
    assert len(out.outputs) == 1
