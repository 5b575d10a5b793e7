"""See the optimizers move: trajectories on 2-D loss surfaces, and a widget to explore them.

The paths are computed by the *same* update rules the models train with
(:mod:`dlt_lib.updates`), applied to a two-parameter "model" whose loss is a
surface you can draw.  Two surfaces show the classic difficulties:

- ``"ravine"``: an elongated bowl, 20 times steeper across than along.  Plain
  gradient descent zig-zags across it; momentum and per-parameter rates help.
- ``"rosenbrock"``: a curved, flat-bottomed valley with its minimum at (1, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor

from dlt_lib import updates as update_rules
from dlt_lib.validation import check_option


@dataclass(frozen=True)
class Surface:
    """A loss of two parameters that can be drawn.  Taught in ``book/gradient_descent.ipynb``."""

    name: str
    loss: object  # function (x, y) -> expression; works on PyTensor variables and NumPy arrays alike
    start: tuple
    minimum: tuple
    xlim: tuple
    ylim: tuple
    log_levels: bool


SURFACES = {
    "ravine": Surface(
        "ravine",
        lambda x, y: 0.5 * (x**2 + 20 * y**2) / 10,
        (-9.0, 2.0),
        (0.0, 0.0),
        (-10, 10),
        (-3, 3),
        False,
    ),
    "rosenbrock": Surface(
        "rosenbrock",
        lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        (-1.5, 2.0),
        (1.0, 1.0),
        (-2, 2),
        (-1, 3),
        True,
    ),
}

# Hyper-parameters that make each rule behave sensibly at the explorer's learning rates.
DEFAULT_KWARGS = {"momentum": {"momentum": 0.9}, "nesterov_momentum": {"momentum": 0.9}}

# Tiny graphs: compiling dominates, so use PyTensor's quick-to-compile Python mode here.
_MODE = "FAST_COMPILE"
_compiled = {}


def _stepper(surface: str, optimizer: str):
    key = (surface, optimizer)
    if key not in _compiled:
        s = SURFACES[surface]
        position = pytensor.shared(np.array(s.start, dtype="float64"), name="position")
        learning_rate = pytensor.shared(np.asarray(0.1, dtype="float64"), name="learning_rate")
        loss = s.loss(position[0], position[1])
        rule = update_rules.get_optimizer(optimizer)
        ups = rule(loss, [position], learning_rate=learning_rate, **DEFAULT_KWARGS.get(optimizer, {}))
        step = pytensor.function([], loss, updates=ups, mode=_MODE)
        state = [var for var in ups if var is not position]
        _compiled[key] = (step, position, learning_rate, state)
    return _compiled[key]


def trajectory(surface: str, optimizer: str, learning_rate: float, steps: int, start=None) -> np.ndarray:
    """Positions visited by ``optimizer`` on ``surface``: an array of shape ``(steps + 1, 2)``.

    A path that leaves the plotted region by a factor of 1e6 is cut short
    there (the rule diverged at this learning rate).  Taught in ``book/gradient_descent.ipynb``.
    """
    check_option(surface, "surface", tuple(SURFACES))
    step, position, lr, state = _stepper(surface, optimizer.lower().replace("-", "_"))
    s = SURFACES[surface]
    position.set_value(np.array(s.start if start is None else start, dtype="float64"))
    lr.set_value(np.asarray(learning_rate, dtype="float64"))
    for var in state:  # a fresh start for velocities, averages and counters
        var.set_value(np.zeros_like(var.get_value()))
    path = [position.get_value()]
    with np.errstate(all="ignore"):
        for _ in range(int(steps)):
            step()
            p = position.get_value()
            path.append(p)
            if not np.all(np.isfinite(p)) or np.abs(p).max() > 1e6 * max(map(abs, s.xlim + s.ylim)):
                break
    return np.array(path)


COLORS = {
    "sgd": "#d62728",
    "momentum": "#1f77b4",
    "nesterov_momentum": "#17becf",
    "adagrad": "#2ca02c",
    "rmsprop": "#9467bd",
    "adadelta": "#8c564b",
    "adam": "#ff7f0e",
}


def plot_trajectories(surface: str, paths: dict, ax=None, title=None):
    """Draw ``paths`` (name -> array from :func:`trajectory`) over the contours of ``surface``.

    Taught in ``book/gradient_descent.ipynb``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    s = SURFACES[surface]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    xs, ys = np.linspace(*s.xlim, 300), np.linspace(*s.ylim, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = s.loss(X, Y)
    if s.log_levels:
        levels = np.logspace(-1, 3.5, 20)
        ax.contourf(X, Y, Z, levels=levels, norm=LogNorm(), cmap="Greys", alpha=0.55)
    else:
        levels = np.linspace(0, Z.max(), 25)
        ax.contourf(X, Y, Z, levels=levels, cmap="Greys", alpha=0.55)
    ax.plot(*s.minimum, marker="*", color="black", markersize=14, label="minimum", linestyle="none")
    for name, path in paths.items():
        shown = path[(np.abs(path[:, 0]) < 1e3) & (np.abs(path[:, 1]) < 1e3)]
        final = s.loss(*path[-1]) if np.all(np.isfinite(path[-1])) else np.inf
        ax.plot(
            shown[:, 0],
            shown[:, 1],
            "-o",
            markersize=2.5,
            linewidth=1.4,
            color=COLORS.get(name),
            label=f"{name} (final loss {final:.3g})",
        )
    ax.set_xlim(*s.xlim)
    ax.set_ylim(*s.ylim)
    ax.set_xlabel("parameter 1")
    ax.set_ylabel("parameter 2")
    ax.set_title(title or f"{len(paths)} optimizers on the {surface} surface")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return ax.figure


def optimizer_explorer(surface="ravine", optimizers=("sgd", "momentum", "adam"), learning_rate=0.1, steps=50):
    """An ipywidgets panel: pick a surface, optimizers, learning rate and steps; see the paths.

    In the rendered book the controls and the first figure are stored in the
    page; moving the sliders recomputes only when a Python kernel is running
    (Binder, Colab, or locally).  Taught in ``book/gradient_descent.ipynb``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    surface_w = widgets.Dropdown(options=sorted(SURFACES), value=surface, description="surface")
    optim_w = widgets.SelectMultiple(
        options=list(update_rules.OPTIMIZERS), value=tuple(optimizers), description="optimizers", rows=7
    )
    lr_w = widgets.FloatLogSlider(
        value=learning_rate,
        base=10,
        min=-4,
        max=0.5,
        step=0.05,
        description="learning rate",
        readout_format=".4f",
        style={"description_width": "initial"},
    )
    steps_w = widgets.IntSlider(value=steps, min=1, max=300, step=1, description="steps")
    out = widgets.Output()

    def redraw(*_):
        paths = {name: trajectory(surface_w.value, name, lr_w.value, steps_w.value) for name in optim_w.value}
        fig = plot_trajectories(surface_w.value, paths)
        # Store the figure in the Output widget's state (not just on screen): that state is
        # what the rendered book embeds, so the static page shows the first figure too.
        out.outputs = ()
        out.append_display_data(fig)
        plt.close(fig)

    for w in (surface_w, optim_w, lr_w, steps_w):
        w.observe(redraw, names="value")
    redraw()
    controls = widgets.HBox([widgets.VBox([surface_w, lr_w, steps_w]), optim_w])
    return widgets.VBox([controls, out])
