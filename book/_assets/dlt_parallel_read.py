"""Lets Sphinx read, and so execute, several chapters at once.

Sphinx reads in parallel only when every extension says it may.  Two that
Jupyter Book 1 loads say nothing, so Sphinx assumes they may not, reads one
chapter after the other, and warns (an error under ``-W``):

- sphinx-multitoc-numbering 0.1.3 only replaces how section numbers are
  assigned, which Sphinx does in the main process once every chapter is read;
- sphinx-jupyterbook-latex 1.0 only labels the nodes of the document being
  read (its read-time transform) and rewrites doctrees when writing LaTeX.

Neither shares state between documents while they are read, so this declares
them parallel-safe.  ``scripts/jupyter_book_build.py`` sets the number of
processes.
"""

SAFE_WHEN_READING = ("sphinx_multitoc_numbering", "sphinx_jupyterbook_latex")


def _declare_parallel_safe(app):
    for name in SAFE_WHEN_READING:
        extension = app.extensions.get(name)
        if extension is not None and extension.parallel_read_safe is None:
            extension.parallel_read_safe = True


def setup(app):
    app.connect("builder-inited", _declare_parallel_safe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
