#!/usr/bin/env python3
"""Serve the book's JavaScript from the book itself, not from a CDN.

Sphinx loads MathJax from a CDN, and myst-nb loads RequireJS and the Jupyter
widget manager from two more, so by default the built HTML shows raw LaTeX
and dead widgets without internet.  This script fetches the three packages
from the npm registry (``npm pack``, by package name) and keeps only the
files the pages need, in ``book/_web_assets/`` (gitignored).  ``_config.yml``
adds its ``static/`` folder to ``html_static_path`` (its ``root/`` folder to
``html_extra_path``) and points ``mathjax_path`` and ``nb_ipywidgets_js`` at
it.

    python scripts/fetch_web_assets.py fetch [--dest DIR]   # idempotent
    python scripts/fetch_web_assets.py check _build/html    # no CDN left?

``check`` fails (exit 1) when a built page still loads a script, stylesheet
or font from another host, or names one of the usual CDNs anywhere.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "book" / "_web_assets"

# npm spec -> what to keep: (path or glob inside the tarball's "package/", path under dest).
# The "static" folder under dest becomes the book's _static/ (html_static_path); the "root" folder is
# copied to the top of the HTML (html_extra_path).
PACKAGES: dict[str, list[tuple[str, str]]] = {
    "mathjax@3": [
        ("LICENSE", "static/mathjax/LICENSE"),
        ("es5", "static/mathjax"),  # filtered by _keep_mathjax below
    ],
    "requirejs@2": [
        ("require.js", "static/require.js"),
    ],
    # ipywidgets 8 pairs with html-manager 1.x (ipywidgets' __html_manager_version__).
    "@jupyter-widgets/html-manager@1": [
        ("dist/embed-amd.js", "static/embed-amd.js"),
        # The widgets' icon font (Font Awesome): the bundle asks for it relative
        # to the *page*, under @jupyter-widgets/[html-manager/dist/].  Our
        # chapters all live in book/, so that is where it goes.  woff2 only:
        # every browser that runs the widgets reads it.
        ("dist/*.woff2", "root/book/@jupyter-widgets/html-manager/dist/"),
        ("dist/*.woff2", "root/book/@jupyter-widgets/"),
    ],
}

# MathJax: the combined TeX+MathML -> CommonHTML component Sphinx uses by
# default, plus what it loads on demand (TeX extensions, the CHTML fonts,
# the menu, accessibility and speech).  The other combined builds and the
# SVG output are never loaded by our pages.
_MATHJAX_SKIP_TOP = re.compile(r"^(tex-chtml.*|tex-svg.*|tex-mml-svg|mml-.*|node-main|latest)\.js$")


def _keep_mathjax(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) == 1:
        return not _MATHJAX_SKIP_TOP.match(parts[0])
    return not (parts[0] == "output" and parts[1].startswith("svg"))


STAMP = ".fetched.json"


def _npm() -> str:
    npm = shutil.which("npm")
    if not npm:
        sys.exit(
            "fetch_web_assets: npm is not installed.  On Debian/Ubuntu: apt-get install nodejs npm "
            "(make book does this when run as root)."
        )
    return npm


def _pack(npm: str, spec: str, workdir: Path) -> tuple[Path, str]:
    out = subprocess.run(
        [npm, "pack", spec, "--json", "--pack-destination", str(workdir), "--loglevel=error"],
        check=True,
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    info = json.loads(out.stdout)[0]
    return workdir / info["filename"], info["version"]


def _targets(inner: str, wanted: list[tuple[str, str]]) -> list[str]:
    """Where the tarball member package/<inner> goes (relative to dest), if anywhere."""
    out = []
    for src, target in wanted:
        if any(c in src for c in "*?["):
            if fnmatch.fnmatchcase(inner, src):
                out.append(target + inner.rsplit("/", 1)[-1])
        elif inner == src:
            out.append(target)
        elif inner.startswith(src + "/"):
            rest = inner[len(src) + 1 :]
            if src == "es5" and not _keep_mathjax(rest):
                continue
            out.append(f"{target}/{rest}")
    return out


def _extract(tarball: Path, wanted: list[tuple[str, str]], dest: Path) -> int:
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            targets = _targets(member.name[len("package/") :], wanted)
            if not targets:
                continue
            data = tar.extractfile(member).read()
            for rel_target in targets:
                out = dest / rel_target
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
                count += 1
    return count


def fetch(dest: Path = DEFAULT_DEST, force: bool = False) -> dict[str, str]:
    """Fetch the packages into ``dest`` unless already there; return {spec: version}."""
    stamp = dest / STAMP
    if not force and stamp.exists():
        recorded = json.loads(stamp.read_text())
        if set(recorded) == set(PACKAGES) and all(
            (dest / target).exists() for files in PACKAGES.values() for src, target in files if "*" not in src
        ):
            print(f"fetch_web_assets: up to date in {dest} ({_summary(recorded)})")
            return recorded
    npm = _npm()
    tmp_dest = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp_dest, ignore_errors=True)
    tmp_dest.mkdir(parents=True)
    versions = {}
    with tempfile.TemporaryDirectory() as work:
        for spec, wanted in PACKAGES.items():
            tarball, version = _pack(npm, spec, Path(work))
            n = _extract(tarball, wanted, tmp_dest)
            if n == 0:
                sys.exit(f"fetch_web_assets: nothing extracted from {spec} ({tarball.name})")
            versions[spec] = version
    (tmp_dest / STAMP).write_text(json.dumps(versions, indent=1) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp_dest.rename(dest)
    print(f"fetch_web_assets: fetched into {dest} ({_summary(versions)})")
    return versions


def _summary(versions: dict[str, str]) -> str:
    return ", ".join(f"{spec.rsplit('@', 1)[0]} {v}" for spec, v in versions.items())


# ---------------------------------------------------------------------------
# check: does any built page still need the network?

CDN_NAMES = ("cdn.jsdelivr", "unpkg.com", "cdnjs", "ajax.googleapis", "fonts.googleapis", "code.jquery")
_EXTERNAL = r"""(?:https?:)?//[^"'\s>]+"""
_RESOURCE_PATTERNS = (
    re.compile(rf"""<script\b[^>]*\bsrc\s*=\s*["']({_EXTERNAL})""", re.I),
    re.compile(
        rf"""<link\b(?=[^>]*\brel\s*=\s*["']?(?:stylesheet|preload|modulepreload|icon))[^>]*\bhref\s*=\s*["']({_EXTERNAL})""",
        re.I,
    ),
    re.compile(rf"""@import\s+(?:url\()?["']?({_EXTERNAL})""", re.I),
    re.compile(rf"""<(?:img|iframe)\b[^>]*\bsrc\s*=\s*["']({_EXTERNAL})""", re.I),
)


def find_external(html_dir: Path) -> list[str]:
    """Every external resource or CDN name in the built pages, as 'page: what'."""
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir)
        if rel.parts[0] in ("_static", "_sources", "_images"):
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        for pattern in _RESOURCE_PATTERNS:
            for m in pattern.finditer(text):
                problems.append(f"{rel}: loads {m.group(1)}")
        for name in CDN_NAMES:
            if name in text and not any(name in p for p in problems if p.startswith(f"{rel}:")):
                problems.append(f"{rel}: mentions {name}")
    return problems


def check(html_dir: Path) -> int:
    if not (html_dir / "index.html").exists():
        print(f"check: {html_dir}/index.html not found; build the book first (make book)", file=sys.stderr)
        return 1
    problems = find_external(html_dir)
    if problems:
        print("The built book still needs the network for:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    pages = sum(1 for _ in html_dir.rglob("*.html"))
    print(f"check: {pages} HTML pages, no external scripts, stylesheets, fonts or CDN names")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_fetch = sub.add_parser("fetch", help="fetch MathJax, RequireJS and the widget manager")
    p_fetch.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    p_fetch.add_argument("--force", action="store_true", help="fetch again even if up to date")
    p_check = sub.add_parser("check", help="fail if built pages load anything from another host")
    p_check.add_argument("html_dir", type=Path, nargs="?", default=ROOT / "_build" / "html")
    args = parser.parse_args(argv)
    if args.cmd == "fetch":
        fetch(args.dest, force=args.force)
        return 0
    return check(args.html_dir)


if __name__ == "__main__":
    sys.exit(main())
