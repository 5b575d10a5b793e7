"""requirements.txt (pip), environment.yml (conda, for Binder) and pyproject.toml agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
CONDA_NOT_PACKAGES = {"python", "pip"}


def normalise(name: str) -> str:
    """PEP 503 normalisation: case, and runs of '-', '_', '.' are the same."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_requirements() -> dict[str, Requirement]:
    reqs = {}
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"requirements.txt: options/includes are not expected: {raw!r}"
        req = Requirement(line)
        key = normalise(req.name)
        assert key not in reqs, f"requirements.txt names {req.name} twice"
        reqs[key] = req
    return reqs


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


_CONDA_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(.*)$")


def conda_requirements() -> dict[str, str]:
    specs = {}
    for entry in environment()["dependencies"]:
        if isinstance(entry, dict):  # the pip: section
            continue
        m = _CONDA_SPEC.match(entry)
        assert m, f"environment.yml: cannot read {entry!r}"
        name, spec = m.groups()
        if "::" in entry:
            pytest.fail(f"environment.yml: use the conda-forge channel, not {entry!r}")
        if normalise(name) in CONDA_NOT_PACKAGES:
            continue
        assert normalise(name) not in specs, f"environment.yml names {name} twice"
        specs[normalise(name)] = spec.strip()
    return specs


def test_requirements_and_environment_name_the_same_packages():
    pip_names = set(pip_requirements())
    conda_names = set(conda_requirements())
    assert pip_names, "requirements.txt lists nothing"
    assert pip_names == conda_names, (
        f"only in requirements.txt: {sorted(pip_names - conda_names)}; "
        f"only in environment.yml: {sorted(conda_names - pip_names)}"
    )


def test_no_exact_pins():
    for req in pip_requirements().values():
        for spec in req.specifier:
            assert spec.operator not in ("==", "==="), f"requirements.txt pins {req} exactly; use a range"
    for name, spec in conda_requirements().items():
        assert "==" not in spec, f"environment.yml pins {name}{spec} exactly; use a range"
        # conda's "pkg=1.2" / "pkg 1.2" without an operator is a pin too
        assert not re.match(r"^=?\s*\d", spec), f"environment.yml pins {name} {spec}; use >= / <"


def test_pip_and_conda_ranges_match():
    """Not just the same names: the same version ranges, so Binder runs what CI tests."""
    conda = conda_requirements()
    for name, req in pip_requirements().items():
        assert str(req.specifier) == str(Requirement(f"x{conda[name]}").specifier), (
            f"{name}: requirements.txt says {req.specifier!s}, environment.yml says {conda[name]!r}"
        )


def test_environment_is_conda_forge_and_installs_the_package():
    env = environment()
    assert env["channels"][0] == "conda-forge"
    assert set(env["channels"]) <= {"conda-forge", "nodefaults"}
    pip_sections = [e["pip"] for e in env["dependencies"] if isinstance(e, dict) and "pip" in e]
    assert len(pip_sections) == 1, "environment.yml needs one pip: section installing dlt_lib"
    assert any(re.fullmatch(r"(-e\s+)?\.(\[.*\])?", item.strip()) for item in pip_sections[0]), pip_sections
    assert "pip" in [d for d in env["dependencies"] if isinstance(d, str)], "list pip itself before pip:"


def test_pyproject_runtime_dependencies_are_in_requirements():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = [Requirement(d) for d in pyproject["project"]["dependencies"]]
    assert runtime
    pip_reqs = pip_requirements()
    missing = [str(r) for r in runtime if normalise(r.name) not in pip_reqs]
    assert not missing, f"pyproject.toml depends on {missing}, which requirements.txt does not list"
    for r in runtime:
        for spec in r.specifier:
            assert spec.operator not in ("==", "==="), f"pyproject.toml pins {r} exactly"


def test_requirements_txt_installs_jupyter_book_1():
    """The book is a Jupyter Book 1 project (_config.yml + _toc.yml); 2.x is a different tool."""
    jb = pip_requirements()["jupyter-book"]
    assert not jb.specifier.contains("2.0.0"), f"jupyter-book must stay below 2: {jb}"
    assert jb.specifier.contains("1.0.4")


def test_optional_dependencies_are_in_requirements():
    """Every extra of pyproject.toml is installed by requirements.txt (CI and Binder test them);
    the search extra (optuna, dask, distributed) with the very same ranges."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    pip_reqs = pip_requirements()
    for extra, deps in extras.items():
        for dep in map(Requirement, deps):
            assert normalise(dep.name) in pip_reqs, (
                f"extra [{extra}] needs {dep}, which requirements.txt lacks"
            )
    for dep in map(Requirement, extras["search"]):
        assert str(dep.specifier) == str(pip_reqs[normalise(dep.name)].specifier), (
            f"[search] says {dep}, requirements.txt says {pip_reqs[normalise(dep.name)]}"
        )
    assert {"optuna", "optuna-integration", "dask", "distributed"} <= {
        normalise(Requirement(d).name) for d in extras["search"]
    }
