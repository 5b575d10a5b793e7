"""Reading the book's MyST Markdown: fenced blocks, the exercise directives, roles.

Shared by the student copy (:mod:`.student_copy`) and the nbgrader source
(:mod:`.source`), so both read an exercise and its solution the same way.
The forms are those of ``CONTRIBUTING.md``: an ``{exercise}`` directive with a
``:label:``, then either an inline ``{solution}`` directive or a gated
solution, ``{solution-start}`` ... code cells ... ``{solution-end}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The opening line of a fenced block: three or more backticks, tildes or colons,
# then, for a MyST directive, {name}.  Any fenced block that is not a directive we
# look for (a code sample, a note) is kept whole, unread: a ```` ```md ```` sample
# that shows how to write a solution is not a solution.
OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?:\{(?P<name>[A-Za-z0-9_-]+)\})?(?P<rest>.*)$")

EXERCISE_DIRECTIVES = ("exercise", "solution", "solution-start", "solution-end")


class SolutionError(ValueError):
    """A notebook's solutions are not well formed (e.g. a solution-start without a solution-end).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """


def closes(line: str, fence: str) -> bool:
    """True if ``line`` closes a block opened with ``fence`` (same character, at least as long).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    stripped = line.strip()
    return bool(stripped) and set(stripped) == {fence[0]} and len(stripped) >= len(fence)


def find_close(lines: list[str], start: int, fence: str) -> int | None:
    """Index of the line closing the fence opened at ``lines[start]``, or None.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    for j in range(start + 1, len(lines)):
        if closes(lines[j], fence):
            return j
    return None


def first_word(rest: str) -> str:
    """The argument of a directive (a label, a title's first word), or ``""``.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    return rest.strip().split()[0] if rest.strip() else ""


@dataclass
class Segment:
    """A piece of a Markdown cell: plain text, or one of the exercise directives.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """

    kind: str  # "text" or one of EXERCISE_DIRECTIVES
    text: str  # the source of the piece (for a directive, the whole fenced block)
    argument: str = ""  # what follows {name} on the opening line (title or label)
    body: str = ""  # a directive's content, without its options (":label: ...")
    label: str = ""  # the :label: option, or the argument of a solution directive


def _directive(kind: str, lines: list[str], start: int, close: int, rest: str) -> Segment:
    inner = lines[start + 1 : close]
    options = {}
    while inner and inner[0].lstrip().startswith(":") and ":" in inner[0].lstrip()[1:]:
        key, _, value = inner.pop(0).strip()[1:].partition(":")
        options[key.strip()] = value.strip()
    label = options.get("label", "") if kind == "exercise" else first_word(rest)
    return Segment(kind, "".join(lines[start : close + 1]), rest.strip(), "".join(inner).strip("\n"), label)


def split_directives(source: str, where: str = "") -> list[Segment]:
    """Split a Markdown cell into text and exercise-directive segments, in order.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    lines = source.splitlines(keepends=True)
    segments: list[Segment] = []
    text: list[str] = []
    i = 0
    while i < len(lines):
        match = OPEN.match(lines[i].rstrip("\r\n"))
        close = find_close(lines, i, match["fence"]) if match else None
        if match and match["name"] in EXERCISE_DIRECTIVES:
            if close is None:
                raise SolutionError(f"{where}: the {{{match['name']}}} block opened here is never closed.")
            if "".join(text).strip():
                segments.append(Segment("text", "".join(text).strip("\n")))
            text = []
            segments.append(_directive(match["name"], lines, i, close, match["rest"]))
            i = close + 1
        elif match and close is not None:
            text.extend(lines[i : close + 1])  # another fenced block: kept whole, unread
            i = close + 1
        else:
            text.append(lines[i])
            i += 1
    if "".join(text).strip():
        segments.append(Segment("text", "".join(text).strip("\n")))
    return segments


_ROLE = re.compile(r"\{(?P<role>[A-Za-z:_-]+)\}`(?P<content>[^`]*)`")


def _role_text(match: re.Match) -> str:
    role, content = match["role"], match["content"]
    if role == "math":
        return f"${content}$"
    shown = re.sub(r"\s*<[^>]*>$", "", content)  # "text <target>" shows "text"
    if role in ("glue:text", "glue", "glue:any"):
        return f"*({shown}, computed in the book)*"
    return f"`{shown}`" if role in ("doc", "ref", "numref", "eq", "cite", "cite:p", "cite:t") else shown


def plain_markdown(text: str) -> str:
    """MyST roles (``{doc}`x```, ``{ref}`y```) as plain Markdown that Jupyter renders.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    return _ROLE.sub(_role_text, text)
