"""dlt_lib.notebook.glue writes exactly what myst-nb's glue writes, without importing it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from dlt_lib import notebook


@pytest.fixture(scope="module")
def shell():
    # display() only produces outputs inside an IPython shell, as in a kernel.
    return InteractiveShell.instance()


def _outputs(shell, glue, *args, **kwargs):
    with capture_output() as captured:
        glue(*args, **kwargs)
    return [(out.data, out.metadata) for out in captured.outputs]


@pytest.mark.parametrize("display", [False, True])
@pytest.mark.parametrize("value", ["9.03%", 0.0903, 546, [1, 2]])
def test_glue_writes_what_myst_nb_reads(shell, value, display):
    myst_glue = pytest.importorskip("myst_nb").glue
    ours = _outputs(shell, notebook.glue, "answer", value, display=display)
    theirs = _outputs(shell, myst_glue, "answer", value, display=display)
    assert ours == theirs
    ((data, metadata),) = ours
    assert metadata["scrapbook"]["name"] == "answer"
    assert all(mime.startswith(notebook.GLUE_PREFIX) for mime in data) != display


def test_glue_returns_the_value_and_shows_nothing_outside_the_book(shell, monkeypatch):
    monkeypatch.setattr(notebook, "find_spec", lambda name: None)  # as on Colab: no myst_nb
    with capture_output() as captured:
        assert notebook.glue("answer", 42) == 42
    assert captured.outputs == []


def test_glue_does_not_import_nbformat():
    # nbformat's schema checker takes seconds to import; a chapter pays it once per kernel.
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell; InteractiveShell.instance()\n"
        "from dlt_lib.notebook import glue; glue('x', 1)\n"
        "print('nbformat' in sys.modules, 'myst_nb.ext.glue' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["False", "False"], out
