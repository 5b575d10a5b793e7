"""The shape of the library (issue 10): small functions, no import cycle, every public name points to its chapter."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "dlt_lib"
MODULES = sorted(p.stem for p in LIBRARY.glob("*.py") if p.stem != "__main__")
# A package (dlt_lib/search/) is one node of the import graph; each of its files is held to the same rules.
PACKAGES = sorted(p.parent.name for p in LIBRARY.glob("*/__init__.py"))
FILES = {m: [LIBRARY / f"{m}.py"] for m in MODULES} | {
    p: sorted((LIBRARY / p).glob("*.py")) for p in PACKAGES
}
SUBMODULES = [f"{p}.{f.stem}" for p in PACKAGES for f in FILES[p] if f.stem != "__init__"]
MAX_BODY_LINES = 60
NOT_YET_POINTING: set = set()  # every module names its chapters now


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _body_lines(node) -> int:
    """Lines from the first statement after the docstring to the end: what a reader reads."""
    body = node.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(getattr(body[0], "value", None), ast.Constant)
    ):
        body = body[1:]
    return node.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize(
    "path", [f for files in FILES.values() for f in files], ids=lambda p: str(p.relative_to(LIBRARY))
)
def test_no_function_body_is_longer_than_60_lines(path):
    tree = ast.parse(path.read_text())
    long = {
        f"{f.name} (line {f.lineno})": _body_lines(f)
        for f in _functions(tree)
        if _body_lines(f) > MAX_BODY_LINES
    }
    assert not long, f"{path.relative_to(ROOT)}: split these into named steps: {long}"


def _imports(module: str) -> set[str]:
    """The dlt_lib modules ``module`` imports, at the top or inside functions."""
    found = set()
    nodes = [node for path in FILES[module] for node in ast.walk(ast.parse(path.read_text()))]
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "dlt_lib" if node.level else (node.module or "")
            names = [f"{base}.{node.module}" if node.level and node.module else base]
            names += [f"{names[0]}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {
            name.split(".")[1]
            for name in names
            if name.startswith("dlt_lib.") and name.split(".")[1] in FILES
        }
    return found - {module}


def _cycle(graph):
    """One import cycle in ``graph`` (module -> imported modules), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m, [m]))), None)


def test_no_import_cycle_between_library_modules():
    graph = {module: _imports(module) for module in FILES}
    assert "checkpoint" in graph["training"]  # the graph is really read: training saves checkpoints
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # and a cycle would be seen


_CHAPTER = re.compile(r"book/(\w+)\.(ipynb|md)")


def _public(module_name):
    module = importlib.import_module(f"dlt_lib.{module_name}")
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
            yield name, obj


@pytest.mark.parametrize(
    "module", [m for m in MODULES + SUBMODULES if m not in NOT_YET_POINTING and m != "__init__"]
)
def test_each_public_function_names_the_chapter_that_teaches_it(module):
    """As d2l's library does: a student who meets a function in the library can find its chapter."""
    missing, dangling = [], []
    for name, obj in _public(module):
        chapters = _CHAPTER.findall(inspect.getdoc(obj) or "")
        if not chapters:
            missing.append(name)
        dangling += [
            f"{name}: book/{c}.{ext}" for c, ext in chapters if not (ROOT / "book" / f"{c}.{ext}").exists()
        ]
    assert not missing, f"dlt_lib.{module}: no 'book/<chapter>.ipynb' in the docstring of {missing}"
    assert not dangling, f"dlt_lib.{module}: docstrings name chapters that do not exist: {dangling}"
