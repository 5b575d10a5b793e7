"""Small helpers for the book's notebooks.

:func:`glue` hands a number computed in a cell to the prose around it, so
that a sentence such as "the test error is {glue:text}`lr_test_error`" always
quotes what the code just produced (a Jupyter Book / myst-nb feature).  Outside
the book build (Colab, a plain Jupyter) it does nothing but return the value.
"""

from __future__ import annotations


def glue(name: str, value, display: bool = False):
    """Make ``value`` available to the prose as ``{glue:text}`name```; return ``value``.

    Format numbers before gluing (``glue("err", f"{err:.2%}")``) so the prose
    shows them exactly as intended.
    Used by every chapter, e.g. ``book/getting_started.ipynb``.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # not building the book: nothing to hand over
        return value
    myst_glue(name, value, display=display)
    return value
