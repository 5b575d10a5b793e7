"""The book's sources and configuration (the notebooks themselves run under nbval in `make test`)."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import book_toc
import pytest
import yaml
from support import load_script, require

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOT_CHAPTERS = {"_assets", "_web_assets", "_build"}


fwa = load_script("fetch_web_assets")


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files() -> list[str]:
    return book_toc.entries()


def book_sources() -> list[Path]:
    sources = []
    for path in sorted(BOOK.rglob("*")):
        rel = path.relative_to(BOOK)
        if rel.parts[0] in NOT_CHAPTERS or any(p.startswith(".") for p in rel.parts):
            continue
        if path.suffix in (".md", ".ipynb"):
            sources.append(path)
    return sources


def notebooks() -> list[Path]:
    return [p for p in book_sources() if p.suffix == ".ipynb"]


def test_toc_and_book_folder_agree():
    listed = toc_files()
    assert listed[0] == "book/intro"
    for entry in listed:
        matches = [p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.exists()]
        assert len(matches) == 1, f"_toc.yml entry {entry!r}: expected one of .md/.ipynb, found {matches}"
    on_disk = {str(p.relative_to(ROOT).with_suffix("")) for p in book_sources()}
    orphans = on_disk - set(listed)
    assert not orphans, f"in book/ but not in _toc.yml (so never built): {sorted(orphans)}"


def test_there_are_notebooks():
    # nbval collects book/; with no notebook `make test` would test no chapter at all.
    assert notebooks()


def _load_refresh_script():
    return load_script("refresh_notebook_outputs")


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebook_stores_only_the_outputs_nbval_checks(path):
    """Outputs only in cells marked NBVAL_CHECK_OUTPUT (nbval compares those); no figures, timings, widget state."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernel must be python3"
    found = _load_refresh_script().problems(nb)
    assert not found, (
        f"{path.name}: {found}; run python scripts/refresh_notebook_outputs.py {path.relative_to(ROOT)}"
    )


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebook_installs_dlt_lib_on_colab(path):
    nb = json.loads(path.read_text())
    first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(first_code["source"])
    repo = config()["repository"]["url"]
    assert "import dlt_lib" in source
    assert "google.colab" in source and f"git+{repo}" in source, (
        "the first code cell must install dlt_lib on Colab (see book/getting_started.ipynb)"
    )


# --- offline HTML ------------------------------------------------------------


def test_config_serves_mathjax_and_widgets_from_the_book():
    cfg = config()
    sphinx = cfg["sphinx"]["config"]
    static_dirs = [ROOT / p for p in sphinx["html_static_path"]]
    assert static_dirs == [fwa.DEFAULT_DEST / "static"]
    assert [ROOT / p for p in sphinx["html_extra_path"]] == [fwa.DEFAULT_DEST / "root"]
    assert "://" not in sphinx["mathjax_path"]
    scripts = list(sphinx["nb_ipywidgets_js"])
    assert scripts == ["require.js", "embed-amd.js"], "RequireJS must load before the widget manager"
    # everything the config names is something fetch_web_assets.py provides
    provided = {target for files in fwa.PACKAGES.values() for _, target in files}
    for name in [sphinx["mathjax_path"], *scripts]:
        assert "://" not in name
        assert any(
            name == t.removeprefix("static/") or name.startswith(t.removeprefix("static/") + "/")
            for t in provided
        ), f"{name} is not fetched by scripts/fetch_web_assets.py"
    assert cfg["execute"]["execute_notebooks"] in ("force", "cache")
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]


def test_check_finds_cdn_references(tmp_path):
    (tmp_path / "index.html").write_text('<html><script src="_static/require.js"></script></html>')
    (tmp_path / "book").mkdir()
    page = tmp_path / "book" / "chapter.html"
    page.write_text(
        '<a href="https://mybinder.org/v2/gh/x">Binder</a><script src="../_static/mathjax/tex.js"></script>'
    )
    assert fwa.find_external(tmp_path) == []
    page.write_text(
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato">'
        '<script>const URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>'
    )
    problems = fwa.find_external(tmp_path)
    assert any("cdn.jsdelivr.net" in p for p in problems)
    assert any("fonts.googleapis.com" in p for p in problems)
    assert any("unpkg.com" in p for p in problems)
    assert fwa.check(tmp_path) == 1


@pytest.mark.book
def test_fetch_web_assets(tmp_path):
    """npm pack works and gives every file the book's pages load."""
    require(shutil.which("npm"), "npm is not installed (apt-get install nodejs npm; .ci/run does)")
    dest = tmp_path / "web"
    versions = fwa.fetch(dest)
    assert versions["mathjax@3"].startswith("3.")
    assert versions["@jupyter-widgets/html-manager@1"].startswith("1.")
    static = dest / "static"
    assert (static / "require.js").stat().st_size > 10_000
    assert (static / "embed-amd.js").stat().st_size > 100_000
    assert (static / config()["sphinx"]["config"]["mathjax_path"]).is_file()
    assert list((static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (static / "mathjax" / "input" / "tex" / "extensions" / "mhchem.js").is_file()
    assert list((dest / "root" / "book" / "@jupyter-widgets").glob("*.woff2"))
    # a second call is a no-op
    assert fwa.fetch(dest) == versions


# --- the page a reader sees (issue 9) ----------------------------------------
# These read the notebooks' sources; the executed pages are read by the
# browser tests.  Bookkeeping (glue, asserts) belongs in cells tagged
# remove-cell / remove-input, which still run in the build and under nbval.

HIDDEN_TAGS = {"remove-cell", "remove-input"}
PAGE_WIDTH = 79  # book/ruff.toml: the code column shows about 80 characters


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


def _shown_code_cells(path):
    for i, cell in enumerate(_cells(path)):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] == "code" and not tags & HIDDEN_TAGS:
            yield i, _source(cell)


def _markdown(path) -> str:
    if path.suffix == ".md":
        return path.read_text()
    return "\n\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")


def _fenced_code(markdown: str):
    """Lines of fenced code blocks (```python, ```bash, ``` ...), not MyST directives (```{...}).

    A bare fence closes the innermost open block, directive or code, so the
    prose after a directive's closing fence is not taken for code.
    """
    open_blocks = []  # (fence, "code" | "directive"), innermost last
    for line in markdown.splitlines():
        fence = re.match(r"(`{3,})(.*)", line.strip())
        if fence:
            ticks, info = fence.groups()
            if open_blocks and open_blocks[-1][0] == ticks and not info.strip():
                open_blocks.pop()
                continue
            if not open_blocks or open_blocks[-1][1] == "directive":
                open_blocks.append((ticks, "directive" if info.startswith("{") else "code"))
                continue
        if open_blocks and open_blocks[-1][1] == "code":
            yield line


def test_fenced_code_reads_directives_and_code_blocks_apart():
    markdown = "\n".join(
        [
            "```{solution-start} x",
            ":class: dropdown",
            "```",
            "prose after a directive " + "is long " * 12,
            "````{exercise} y",
            "```python",
            "code_inside_a_directive = 1",
            "```",
            "````",
            "```bash",
            "echo a ```",
            "```",
        ]
    )
    assert list(_fenced_code(markdown)) == ["code_inside_a_directive = 1", "echo a ```"]


def _chapters():
    """Numbered chapters: notebooks whose title reads '# N. ...'."""
    found = []
    for path in notebooks():
        first = next((c for c in _cells(path) if c["cell_type"] == "markdown"), None)
        if first and re.match(r"#\s+\d+\.\s", _source(first)):
            found.append(path)
    return found


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_reader_facing_code_has_no_bookkeeping(path):
    found = []
    for i, source in _shown_code_cells(path):
        if re.search(r"(?<![\w.])glue\(", source):
            found.append(f"cell {i} calls glue()")
        if re.search(r"^\s*assert\b", source, flags=re.MULTILINE):
            found.append(f"cell {i} asserts")
    assert not found, (
        f"{path.name}: {found}; move glue() and test asserts into a cell tagged remove-cell "
        "(it still runs in the build and under nbval)"
    )


@pytest.mark.parametrize("path", book_sources(), ids=lambda p: p.name)
def test_code_fits_the_page(path):
    lines = list(_fenced_code(_markdown(path)))
    if path.suffix == ".ipynb":
        for _, source in _shown_code_cells(path):
            lines += source.splitlines()
    too_long = [line for line in lines if len(line) > PAGE_WIDTH]
    assert not too_long, (
        f"{path.name}: {len(too_long)} code line(s) longer than {PAGE_WIDTH} characters, cut off on the "
        f"page; run `ruff format` on the notebook and shorten what it cannot, e.g. {too_long[0]!r}"
    )


HAND_TYPED = re.compile(r"\b(exercises?|chapters?)\s+\d+", re.IGNORECASE)


@pytest.mark.parametrize("path", book_sources(), ids=lambda p: p.name)
def test_cross_references_are_labels_not_numbers(path):
    # Exercises are numbered across the book and chapters may move: "exercise 2"
    # typed by hand goes stale.  Use {ref}`label` / {doc}`chapter`.
    found = sorted({m.group(0) for m in HAND_TYPED.finditer(_markdown(path))})
    assert not found, f"{path.name}: {found}; refer with {{ref}} to an exercise label or {{doc}} to a chapter"


def _exercise_labels(path):
    return re.findall(r"```\{exercise\}[^\n]*\n:label:\s*(\S+)", _markdown(path))


def test_exercise_labels_are_unique_across_the_book():
    labels = [label for path in notebooks() for label in _exercise_labels(path)]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    assert not repeated, f"exercise labels used twice: {repeated}"


def _sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, body) for every '## ' heading, in order."""
    parts = re.split(r"^## +(.+)$", markdown, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_chapter_has_exercises_questions_and_reading(path):
    markdown = _markdown(path)
    assert len(_exercise_labels(path)) >= 3, f"{path.name}: fewer than three exercises"
    sections = _sections(markdown)
    headings = [heading.strip() for heading, _ in sections]
    assert headings[-2:] == ["Check your understanding", "Further reading"], (
        f"{path.name}: the chapter should end with '## Check your understanding' then "
        f"'## Further reading'; its last sections are {headings[-3:]}"
    )
    questions = re.findall(r"^\d+\.\s", sections[-2][1], flags=re.MULTILINE)
    assert 6 <= len(questions) <= 10, f"{path.name}: {len(questions)} questions; want 6 to 10"
    works = re.findall(r"^- .*?\{cite:[tp]\}`[^`]+`", sections[-1][1], flags=re.MULTILINE | re.DOTALL)
    items = re.findall(r"^- ", sections[-1][1], flags=re.MULTILINE)
    assert 2 <= len(items) <= 4 and len(works) == len(items), (
        f"{path.name}: Further reading should list 2 to 4 works, each cited with {{cite:t}} or {{cite:p}}"
    )


def test_the_text_and_tests_agree_on_what_a_chapter_is():
    # getting_started is chapter 1; if titles lose their numbers, the test above tests nothing.
    names = {p.stem for p in _chapters()}
    assert {"getting_started", "dataset", "losses", "gradient_descent", "regularization"} <= names


# --- Code on the page runs when a reader retypes it --------------------------

HIDDEN_INPUT = {"remove-input", "remove-cell"}


def _names(tree) -> tuple[set[str], set[str]]:
    """(names the code binds, names it reads), by its syntax tree."""
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else read).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, read


def hidden_only_names(cells) -> list[tuple[int, set[str]]]:
    """(cell index, names) for each shown code cell that reads names only hidden cells bound.

    A cell tagged remove-input or remove-cell runs but is not on the page; a
    reader who types the page in order would not have what it binds.
    """
    shown, hidden, found = set(), set(), []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # IPython's magics and shell escapes are not Python.
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        bound, read = _names(ast.parse(source))
        if HIDDEN_INPUT & set(cell.get("metadata", {}).get("tags", [])):
            hidden |= bound - shown
            continue
        missing = (read - shown - bound) & hidden
        if missing:
            found.append((index, missing))
        shown |= bound
    return found


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_shown_code_uses_no_name_that_only_hidden_cells_define(path):
    found = hidden_only_names(json.loads(path.read_text())["cells"])
    assert not found, (
        f"{path.name}: shown cells read names that only hidden (remove-input/remove-cell) cells define: "
        f"{found}. Define them in a shown cell, or show the cell that defines them."
    )


def test_hidden_only_names_finds_a_name_from_a_hidden_cell():
    def cell(source, *tags):
        return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}}

    cells = [
        cell("import numpy as np\nsizes = [1, 2]", "remove-cell"),
        cell("best = max(sizes)\nnp.zeros(best)"),
        cell("sizes = [3]\ntotal = sum(sizes)"),
        cell("%time total"),
    ]
    assert hidden_only_names(cells) == [(1, {"sizes", "np"})]
