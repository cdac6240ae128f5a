"""A helper for the book's notebooks: ``glue`` that also works where MyST-NB is not installed.

The book quotes computed numbers through ``myst_nb.glue``. In a fresh Colab runtime MyST-NB is absent
(and not worth installing: it pulls in Sphinx); there the glued values are simply not recorded, and a
value glued with ``display=True`` is shown as a normal output.
"""

from __future__ import annotations

import ast
import html
import inspect
import math
import numbers
import re
import textwrap


def glue(name: str, variable, display: bool = True) -> None:
    """``myst_nb.glue(name, variable, display)`` when MyST-NB is importable; otherwise show or skip the value.

    Without MyST-NB (a Colab runtime) nothing pastes the value into the text, so a figure is shown where it
    is glued even with ``display=False`` (the Colab edition's caption follows that cell); any other value
    glued with ``display=False`` stays silent.

    Args:
        name: the key the book's ``{glue:...}`` roles and directives use.
        variable: the value (a number, a text, a matplotlib figure, ...).
        display: also show the value as the cell's output.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display or callable(getattr(variable, "savefig", None)):  # a matplotlib figure
            from IPython.display import display as show

            show(variable)
        return
    myst_glue(name, variable, display=display)


# ----------------------------------------------------------------------------------------------
# numbers: one format for the whole book, and glue that stores them rounded


def fmt(value, digits: int = 3) -> str:
    """Format a number the one way the book prints numbers.

    Integers (and floats that are whole numbers of at least 1,000) get thousands separators
    ("100,000"); other floats get ``digits`` significant digits, in scientific notation below 1e-3 or
    from 1e6 on ("3.1e-07"); NaN and infinities are spelled "NaN", "inf" and "-inf".

    Example:
        >>> print(fmt(100000), fmt(0.98916), fmt(3.1e-7, 2), fmt(float("nan")))
        100,000 0.989 3.1e-07 NaN
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if value.is_integer() and 1e3 <= abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) < 1e-3 or abs(value) >= 1e6:
        return f"{value:.{max(digits - 1, 0)}e}"
    return f"{value:.{digits}g}"


def bound(value: float) -> str:
    """A measured difference as text: "0", or "< 1e-N" with the smallest power of ten above it.

    Example:
        >>> print(bound(0.0), bound(3.2e-16), bound(0.04))
        0 < 1e-15 < 1e-1
    """
    value = abs(float(value))
    if math.isnan(value):
        raise ValueError("bound: value is NaN")
    if value == 0:
        return "0"
    return f"< 1e{math.floor(math.log10(value)) + 1}"


def glue_num(key: str, value, digits: int = 6) -> float:
    """Glue ``value`` rounded to ``digits`` significant digits, so that the stored output does not depend
    on the last bits of a float; returns the rounded value."""
    rounded = float(f"{float(value):.{digits}g}")
    glue(key, rounded, display=False)
    return rounded


def glue_bound(key: str, value) -> str:
    """Glue :func:`bound` of ``value`` (a text such as "< 1e-15") and return it."""
    text = bound(value)
    glue(key, text, display=False)
    return text


def glue_text(key: str, text) -> str:
    """Glue ``str(text)`` (for ``{glue:text}`` without a format spec) and return it."""
    text = str(text)
    glue(key, text, display=False)
    return text


def verdict(report) -> str:
    """One phrase for a conformance report: "agrees in every region" or "differs: region, region"."""
    if report.passed:
        return "agrees in every region"
    return "differs: " + ", ".join(report.failed_regions)


# ----------------------------------------------------------------------------------------------
# tables: rendered HTML that fits the column, scrolls in its own box when it cannot, and never wraps
# a number


_PASS = '<span style="color:#1a7f37;font-weight:bold" title="pass">&#10003;</span>'
_FAIL = '<span style="color:#cf222e;font-weight:bold" title="FAIL">&#10007;</span>'
_TABLE_STYLE = "border-collapse:collapse;font-size:0.85em;margin:0"
_CELL_STYLE = "padding:0.2em 0.5em;border-bottom:1px solid #d0d7de;vertical-align:top"
_NUMBER = re.compile(r"^[-+<>≤≥~≈ ]*[0-9][0-9,]*(\.[0-9]+)?(e[-+]?[0-9]+)?\s*%?$|^(NaN|inf|-inf)$")


class Table:
    """A rendered table: HTML in a notebook (``_repr_html_``), Markdown where only that is shown.

    Args:
        header: column titles.
        rows: one sequence of cells per row; numbers are formatted with :func:`fmt`, strings shown as they
            are (escaped), :class:`Html` cells inserted as HTML.
        caption: an optional caption above the table.
        align: per column, "l" or "r"; by default numbers are right-aligned.

    Numbers never wrap (``white-space: nowrap``); the table sits in a box that scrolls sideways on a narrow
    screen instead of being cut off.
    """

    def __init__(self, header, rows, caption: str | None = None, align: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[c if isinstance(c, Html) else _cell_text(c) for c in row] for row in rows]
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"rows: a row has {len(row)} cells for {len(self.header)} columns")
        self.caption = caption
        self.align = align

    def _is_number(self, cell) -> bool:
        return not isinstance(cell, Html) and bool(_NUMBER.match(cell))

    def _repr_html_(self) -> str:
        parts = [
            '<div class="fr-table" style="overflow-x:auto;max-width:100%">',
            f'<table style="{_TABLE_STYLE}">',
        ]
        if self.caption:
            parts.append(
                f'<caption style="caption-side:top;text-align:left">{html.escape(self.caption)}</caption>'
            )
        head = "".join(
            f'<th style="{_CELL_STYLE};text-align:left">{html.escape(h)}</th>' for h in self.header
        )
        parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
        for row in self.rows:
            cells = []
            for i, cell in enumerate(row):
                number = self._is_number(cell)
                right = self.align[i] == "r" if self.align else number
                style = _CELL_STYLE + (";text-align:right" if right else "")
                style += ";white-space:nowrap" if (number or (isinstance(cell, Html) and cell.nowrap)) else ""
                body = cell.html if isinstance(cell, Html) else html.escape(cell)
                label = html.escape(self.header[i], quote=True)
                cells.append(f'<td style="{style}" data-label="{label}">{body}</td>')
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)

    def _repr_markdown_(self) -> str:
        def md(cell) -> str:
            text = cell.text if isinstance(cell, Html) else cell
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(md(h) for h in self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in self.rows]
        return (f"**{self.caption}**\n\n" if self.caption else "") + "\n".join(lines)

    def __repr__(self) -> str:
        return self._repr_markdown_()


class Html:
    """A table cell given as HTML (``html``), with a plain-text fallback (``text``); ``nowrap`` keeps it on
    one line."""

    def __init__(self, html_text: str, text: str, nowrap: bool = True):
        self.html = html_text
        self.text = text
        self.nowrap = nowrap


def _cell_text(cell) -> str:
    if isinstance(cell, str):
        return cell
    if isinstance(cell, numbers.Number) or hasattr(cell, "__float__"):
        return fmt(cell)
    return str(cell)


def mark(passed: bool) -> Html:
    """A green check mark or a red cross (with "pass" / "FAIL" as its text)."""
    return Html(_PASS, "pass") if passed else Html(_FAIL, "FAIL")


def _err(value) -> str:
    if value is None:
        return "–"
    value = float(value)
    if math.isnan(value):
        return "–"
    return f"{value:.1e}" if math.isfinite(value) else fmt(value)


def _wide(text: str) -> Html:
    """A long text cell that keeps a readable width (it wraps at about 18 characters' width otherwise)."""
    return Html(f'<div style="min-width:18em">{html.escape(text)}</div>', text, nowrap=False)


def report_table(report) -> Table:
    """A conformance report (``focal_ref.testing``) as a table: region, cases, result (✓/✗), the worst
    relative error and the tolerance in their own columns, and the failure's cause."""
    rows = []
    for r in report.rows:
        skipped = r.status == "skipped"
        result = Html("skipped", "skipped") if skipped else mark(r.status == "pass")
        cause = getattr(r, "cause", "") or ""
        note = getattr(r, "note", "") or ""
        rows.append(
            [
                r.region,
                fmt(r.cases),
                result,
                "–" if skipped else _err(r.max_rel_err),
                _err(r.tolerance),
                _wide("; ".join(t for t in (cause, note) if t)),
            ]
        )
    header = ["region", "cases", "result", "max rel. error", "tolerance", "cause, worst case"]
    return Table(header, rows, caption=getattr(report, "title", None), align="lrlrrl")


def summary_table(reports: dict) -> Table:
    """Several conformance reports side by side, in a table that fits the column: one row per
    implementation, its verdict (✓/✗), the regions it passes ("all N" when it passes every region) with
    the worst error among them, and each failed region on a line of its own with its error (or "error",
    "non-finite").

    Args:
        reports: ``{label: report}``.
    """
    rows = []
    for label, report in reports.items():
        ran = [r for r in report.rows if r.status != "skipped"]
        failed = [r for r in ran if r.status == "FAIL"]
        passed = [r for r in ran if r.status == "pass"]
        worst_pass = max((r.max_rel_err for r in passed), default=float("nan"))
        if failed:
            passed_html = "<br>".join(html.escape(r.region) for r in passed) or "–"
            passed_cell: Html | str = Html(
                passed_html, ", ".join(r.region for r in passed) or "–", nowrap=False
            )
        else:
            passed_cell = f"all {len(passed)}"
        items = [(r.region, r.cause or _err(r.max_rel_err)) for r in failed]
        failed_html = "<br>".join(
            f'{html.escape(region)}: <span style="white-space:nowrap">{html.escape(err)}</span>'
            for region, err in items
        )
        failed_text = "; ".join(f"{region} ({err})" for region, err in items) or "–"
        rows.append(
            [
                label,
                mark(report.passed),
                passed_cell,
                _err(worst_pass),
                Html(failed_html or "–", failed_text, nowrap=False),
            ]
        )
    header = ["implementation", "result", "regions passed", "worst error (passed)", "regions failed (error)"]
    return Table(header, rows, align="lllrl")


# ----------------------------------------------------------------------------------------------
# code: the package's own source, shown without its docstring


def _plain(text: str) -> str:
    """reST inline markup as plain text: ``:func:`name``` and ````code```` become ``name`` and ``code``."""
    text = re.sub(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def source_code(obj, *, docstring: bool = False) -> str:
    """The source of a function or class as it is in the package, without its docstring (which holds
    reST markup a page would show raw) unless ``docstring`` is true; its first line is kept as a comment.

    Example:
        >>> print(source_code(bound).splitlines()[0])
        def bound(value: float) -> str:
    """
    source = textwrap.dedent(inspect.getsource(obj))
    if docstring:
        return source.rstrip() + "\n"
    tree = ast.parse(source)
    node = tree.body[0]
    body = getattr(node, "body", None) or [None]
    first = body[0]
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return source.rstrip() + "\n"
    lines = source.splitlines()
    summary = _plain(first.value.value.strip().splitlines()[0].strip())
    indent = lines[first.lineno - 1][: len(lines[first.lineno - 1]) - len(lines[first.lineno - 1].lstrip())]
    kept = lines[: first.lineno - 1] + [f"{indent}# {summary}"] + lines[(first.end_lineno or first.lineno) :]
    return "\n".join(kept).rstrip() + "\n"


def show_source(*objects) -> None:
    """Display the source of each object (see :func:`source_code`) as a Python code block."""
    from IPython.display import Markdown, display

    for obj in objects:
        display(Markdown("```python\n" + source_code(obj) + "```"))
