"""Small helpers for the book's notebooks.

:func:`glue` hands a number computed in a cell to the prose around it, so
that a sentence such as "the test error is {glue:text}`lr_test_error`" always
quotes what the code just produced (a Jupyter Book / myst-nb feature).  Outside
the book build (Colab, a plain Jupyter) it does nothing but return the value.
"""

from __future__ import annotations

from importlib.util import find_spec

# How myst-nb (and papermill's scrapbook before it) finds a glued value in a
# cell's outputs: the value's display data, each MIME type under this prefix,
# with the name in the output's metadata.
GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value, display: bool = False):
    """Make ``value`` available to the prose as ``{glue:text}`name```; return ``value``.

    Format numbers before gluing (``glue("err", f"{err:.2%}")``) so the prose
    shows them exactly as intended.
    Used by every chapter, e.g. ``book/getting_started.ipynb``.
    """
    if find_spec("myst_nb") is None:  # not building the book: nothing to hand over
        return value
    # What myst_nb.glue writes, without importing it: its module imports
    # nbformat, whose schema checker takes 2-3 s to import, once per chapter.
    from IPython.core.formatters import format_display_data
    from IPython.display import display as show

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    show({prefix + mime: data for mime, data in bundle.items()}, raw=True, metadata=metadata)
    return value
