"""Sphinx extension: the page shows the reader's code, not the markers for our tools.

- A code cell whose output nbval compares starts with ``# NBVAL_CHECK_OUTPUT``
  (``make test`` runs nbval with ``--nbval-lax``, which checks only those
  cells).  The rendered cell leaves that line out.
- A line the formatter must leave alone (a table of numbers aligned by hand)
  ends in ``# fmt: skip``, and a line the linter must accept ends in
  ``# noqa: ...``.  The rendered cell leaves those comments out.

The notebook a reader downloads or opens in Binder or Colab keeps all of
them, and nbval, ``ruff format`` and ``ruff check`` read them there.
"""

from __future__ import annotations

import re

from docutils import nodes

_MARKER = re.compile(r"\A(?:[ \t]*# NBVAL_[A-Z_]+[ \t]*\n)+")
# A pragma ends the line: fmt-skip, or noqa with or without its codes (E731, F401).
_PRAGMA = re.compile(
    r"[ \t]*#[ \t]*(?:fmt:[ \t]*skip|noqa(?::[ \t]*[A-Z]+[0-9]+(?:[ \t]*,[ \t]*[A-Z]+[0-9]+)*)?)[ \t]*$",
    re.MULTILINE,
)


def clean(code: str) -> str:
    """The cell's code as the page shows it: without nbval markers and linter pragmas."""
    return _PRAGMA.sub("", _MARKER.sub("", code))


def _strip_markers(app, doctree):
    for block in doctree.findall(nodes.literal_block):
        parent = block.parent
        if not (
            isinstance(parent, nodes.container)
            and "cell_input" in parent["classes"]
        ):
            continue
        text = block.astext()
        stripped = clean(text)
        if stripped != text:
            block.children[:] = [nodes.Text(stripped)]
            block.rawsource = stripped


def setup(app):
    app.connect("doctree-read", _strip_markers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
