"""Sphinx extension: the page does not show nbval's markers.

A code cell whose output nbval compares starts with ``# NBVAL_CHECK_OUTPUT``
(``make test`` runs nbval with ``--nbval-lax``, which checks only those
cells).  That line is for the test run, not for the reader, so the rendered
cell leaves it out; the notebook a reader downloads or opens in Binder or
Colab keeps it, and nbval reads it there.
"""

from __future__ import annotations

import re

from docutils import nodes

_MARKER = re.compile(r"\A(?:[ \t]*# NBVAL_[A-Z_]+[ \t]*\n)+")


def _strip_markers(app, doctree):
    for block in doctree.findall(nodes.literal_block):
        parent = block.parent
        if not (
            isinstance(parent, nodes.container)
            and "cell_input" in parent["classes"]
        ):
            continue
        text = block.astext()
        stripped = _MARKER.sub("", text)
        if stripped != text:
            block.children[:] = [nodes.Text(stripped)]
            block.rawsource = stripped


def setup(app):
    app.connect("doctree-read", _strip_markers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
