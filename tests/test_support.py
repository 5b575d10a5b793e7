"""The shared test helpers: the one "skip locally, fail under CI" rule, and the one _toc.yml reader."""

import book_toc
import pytest
from support import require, skip_or_fail_in_ci


def test_ci_helper_fails_in_ci_and_skips_otherwise(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require(False, "thing missing")
    with pytest.raises(pytest.fail.Exception, match="thing missing"):
        skip_or_fail_in_ci("thing missing")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="thing missing"):
        require(False, "thing missing")
    require(True, "present: nothing happens")


def test_toc_reader_walks_chapters_sections_and_parts(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\n"
        "parts:\n  - caption: One\n    chapters:\n      - file: book/a\n        sections:\n"
        "          - file: book/a1\n      - file: book/b\n"
        "  - caption: Two\n    chapters:\n      - file: book/c\n"
    )
    assert book_toc.entries(toc) == ["book/intro", "book/a", "book/a1", "book/b", "book/c"]
    (tmp_path / "book").mkdir()
    for name in ("a1", "c"):
        (tmp_path / "book" / f"{name}.ipynb").write_text("{}")
    assert book_toc.notebooks(toc) == [tmp_path / "book" / "a1.ipynb", tmp_path / "book" / "c.ipynb"]
    toc.write_text("format: jb-article\nroot: x\n")
    with pytest.raises(ValueError, match="jb-book"):
        book_toc.entries(toc)
