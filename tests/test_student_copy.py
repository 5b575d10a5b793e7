"""The lecturer's copy of the notebooks, without the solutions (no nbgrader).

``dlt_lib/homework/student_copy.py``, run as ``python -m dlt_lib.homework
student-copy`` or ``python scripts/student_copy.py``; loaded here through the
script, so the script is tested too.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("student_copy", ROOT / "scripts" / "student_copy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


sc = _load_script()

# Anything that would still be a solution directive in a copy.
SOLUTION_DIRECTIVE = re.compile(r"(`{3,}|~{3,}|:{3,})\s*\{solution(-start|-end)?\}")


def _synthetic():
    """A chapter with both solution forms, an exercise sample in a code fence, and outputs everywhere."""
    cells = [
        new_markdown_cell("# 9. A chapter\n\nSome prose."),
        new_code_cell("x = 1\nprint(x)", execution_count=1, outputs=[new_output("stream", text="1\n")]),
        # Exercise 1, with an inline {solution} in the same cell (nested code fence inside it).
        new_markdown_cell(
            "## Exercises\n\n"
            "```{exercise} Double it\n:label: ex-double\n\nWrite `double(x)`.\n```\n\n"
            "````{solution} ex-double\n:class: dropdown\n\n```python\ndef double(x):\n    return 2 * x\n```\n````\n\n"
            "Text after the inline solution stays."
        ),
        # Exercise 2 with a gated solution: the start shares a cell with the exercise.
        new_markdown_cell(
            ":::{exercise} Square it\n:label: ex-square\n\nWrite `square(x)`.\n:::\n\n"
            "```{solution-start} ex-square\n:class: dropdown\n```\n"
            "Secret explanation in the start cell."
        ),
        new_code_cell("def square(x):\n    return x * x", execution_count=2),
        new_markdown_cell("More of the answer, in a cell of its own."),
        new_code_cell(
            "assert square(3) == 9", execution_count=3, outputs=[new_output("stream", text="ok\n")]
        ),
        new_markdown_cell("```{solution-end}\n```\n\nText after the gated solution stays."),
        # Exercise 3: gated, colon fences, its own cells only; the student's workspace cell stays.
        new_markdown_cell("```{exercise} Cube it\n:label: ex-cube\n\nWrite `cube(x)` below.\n```"),
        new_code_cell("def cube(x):\n    ...  # your code here"),
        new_markdown_cell(":::{solution-start} ex-cube\n:class: dropdown\n:::"),
        new_code_cell("def cube(x):\n    return x ** 3"),
        new_markdown_cell(":::{solution-end}\n:::"),
        # A code sample in Markdown that *shows* a solution directive is prose, not a solution.
        new_markdown_cell("How to write one:\n\n`````md\n```{solution} my-label\nThe answer.\n```\n`````"),
        new_code_cell(
            "y = 2", execution_count=4, outputs=[new_output("execute_result", data={"text/plain": "2"})]
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"state": {}}
    return nb


def test_synthetic_notebook_keeps_exercises_and_removes_every_solution():
    nb = _synthetic()
    copy, report = sc.strip_solutions(nb, "synthetic")
    sources = [c.source for c in copy.cells]
    text = "\n".join(sources)

    # Every solution is gone, in both forms.
    for secret in (
        "return 2 * x",
        "return x * x",
        "Secret explanation",
        "More of the answer",
        "square(3) == 9",
        "return x ** 3",
        "{solution-start}",
        "{solution-end}",
        ":class: dropdown",
    ):
        assert secret not in text, secret
    assert "````{solution}" not in text

    # ...and nothing else: every other cell is kept, in order, unchanged or trimmed around the solution.
    assert sources == [
        "# 9. A chapter\n\nSome prose.",
        "x = 1\nprint(x)",
        "## Exercises\n\n```{exercise} Double it\n:label: ex-double\n\nWrite `double(x)`.\n```\n\n"
        "Text after the inline solution stays.",
        ":::{exercise} Square it\n:label: ex-square\n\nWrite `square(x)`.\n:::",
        sc.ANSWER_CELL,  # an empty cell to work in, where the gated solution was
        "Text after the gated solution stays.",
        "```{exercise} Cube it\n:label: ex-cube\n\nWrite `cube(x)` below.\n```",
        "def cube(x):\n    ...  # your code here",
        sc.ANSWER_CELL,
        nb.cells[13].source,  # the sample in a code fence is untouched
        "y = 2",
    ]
    assert [c.cell_type for c in copy.cells] == [
        "markdown",
        "code",
        "markdown",
        "markdown",
        "code",
        "markdown",
        "markdown",
        "code",
        "code",
        "markdown",
        "code",
    ]
    # Outputs are cleared, the original is not modified.
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")
    assert "widgets" not in copy.metadata and copy.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[1].outputs and len(nb.cells) == 15

    assert report.solution_blocks == 1 and report.gated_solutions == 2 and report.exercises_kept == 3
    assert report.cells_removed == 6 and report.code_cells_removed == 3 and report.answer_cells == 2
    assert report.labels == ["ex-double", "ex-square", "ex-cube"]
    nbformat.validate(copy)


@pytest.mark.parametrize(
    "cells, message",
    [
        (["```{solution-start} a\n```", "code: print('answer')"], "has no {solution-end}"),
        (["```{solution-end}\n```"], "without a {solution-start}"),
        (["```{solution-start} a\n```", "```{solution-start} b\n```", "```{solution-end}\n```"], "inside"),
        (["````{solution} a\nno closing fence"], "never closed"),
    ],
)
def test_malformed_solutions_fail_loudly(cells, message):
    nb = new_notebook(
        cells=[new_code_cell(c[6:]) if c.startswith("code: ") else new_markdown_cell(c) for c in cells]
    )
    with pytest.raises(sc.SolutionError, match=re.escape(message)):
        sc.strip_solutions(nb, "broken")


def test_command_line_writes_copies_and_refuses_broken_notebooks(tmp_path, capsys):
    good = tmp_path / "good.ipynb"
    nbformat.write(_synthetic(), good)
    out = tmp_path / "student"
    assert sc.main([str(good), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 {solution} block, 2 gated solutions" in printed and "kept 3 exercises" in printed
    written = nbformat.read(out / "good.ipynb", as_version=4)
    assert not SOLUTION_DIRECTIVE.search("\n".join(c.source for c in written.cells[:-2]))

    broken = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("```{solution-start} x\n```")]), broken)
    other_out = tmp_path / "other"
    assert sc.main([str(good), str(broken), "--out", str(other_out)]) == 1
    assert "has no {solution-end}" in capsys.readouterr().err
    assert not other_out.exists(), "nothing is written when any notebook is malformed"


def _book_notebooks():
    listed = {p.resolve() for p in sc.toc_notebooks()}
    on_disk = {p.resolve() for p in (ROOT / "book").glob("*.ipynb")}
    return sorted(listed | on_disk)


def test_toc_notebooks_are_the_listed_ones_that_exist():
    paths = sc.toc_notebooks()
    assert paths and all(p.suffix == ".ipynb" and p.exists() for p in paths)


@pytest.mark.parametrize("path", _book_notebooks(), ids=lambda p: p.name)
def test_book_notebooks_copy_without_any_solution_directive(path):
    if not path.exists():
        pytest.skip(f"{path.name} does not exist yet")
    nb = nbformat.read(path, as_version=4)
    copy, report = sc.strip_solutions(nb, path.name)
    # A code sample in a Markdown fence could legitimately *show* a directive, so check
    # the Markdown text outside fenced samples: strip_solutions keeps those samples whole.
    for cell in copy.cells:
        if cell.cell_type == "markdown":
            assert not SOLUTION_DIRECTIVE.search(_outside_code_samples(cell.source)), (path.name, cell.source)
        else:
            assert cell.get("outputs", []) == []
    n_solutions = sum(
        len(re.findall(r"\{solution(-start)?\}", c.source)) for c in nb.cells if c.cell_type == "markdown"
    )
    assert report.solution_blocks + report.gated_solutions <= n_solutions


def _outside_code_samples(source: str) -> str:
    """Markdown without the fenced blocks whose info string is a language (```md, ```python)."""
    return re.sub(r"(?ms)^(`{3,}|~{3,})[ \t]*[A-Za-z][^\n]*\n.*?^\1[ \t]*$", "", source)
