"""``literalinclude`` as Sphinx shows it: a ``:pyobject:`` found with :mod:`ast`, then ``:lines:`` etc."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _line_numbers(spec: str, count: int) -> list[int]:
    """Sphinx's ``:lines:`` syntax ("1-3,5,8-") as 0-based indices."""
    picked: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            start, end = part.split("-", 1)
            picked.extend(range(int(start or 1) - 1, int(end) if end else count))
        else:
            picked.append(int(part) - 1)
    return [i for i in picked if 0 <= i < count]


def literalinclude(path: Path, options: dict[str, str]) -> str:
    """The text ``literalinclude`` shows: the ``:pyobject:`` (decorators included), then ``:lines:`` etc."""
    text = path.read_text(encoding="utf-8")
    lines = _lines(text)
    if "pyobject" in options:
        body: list[ast.stmt] = ast.parse(text).body
        node = None
        for part in options["pyobject"].split("."):
            node = next((n for n in body if getattr(n, "name", None) == part), None)
            if node is None:
                raise ValueError(f"{path}: no object {options['pyobject']!r} for literalinclude")
            body = getattr(node, "body", [])
        assert node is not None
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        lines = lines[start - 1 : node.end_lineno]
    if "start-after" in options:
        at = next(i for i, line in enumerate(lines) if options["start-after"] in line)
        lines = lines[at + 1 :]
    if "end-before" in options:
        lines = lines[: next(i for i, line in enumerate(lines) if options["end-before"] in line)]
    if "lines" in options:
        lines = [lines[i] for i in _line_numbers(options["lines"], len(lines))]
    code = "".join(lines)
    if "dedent" in options:
        code = (
            textwrap.dedent(code)
            if not options["dedent"]
            else "".join(line[int(options["dedent"]) :] for line in _lines(code))
        )
    return code.rstrip("\n")
