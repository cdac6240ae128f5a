"""A check's result: one row per region, shown as a plain-text, Markdown or HTML table.

:class:`ConformanceReport` is what :func:`~focal_ref.testing.check_sigmoid_focal_loss` returns;
:func:`summarize` puts several reports in one table. The table renderers (:func:`text_table`,
:func:`markdown_table`, :func:`html_table`) are public so that notebooks render their own tables the same way.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "RegionResult",
    "ConformanceReport",
    "SummaryTable",
    "summarize",
    "text_table",
    "markdown_table",
    "html_table",
    "format_error",
]


def format_error(value: float | None) -> str:
    """An error as a report prints it: two significant digits, ``"inf"``, or ``"-"`` for none.

    Args:
        value: a relative error, NaN or None (nothing compared).

    Returns:
        The text of the table cell.

    Example:
        >>> format_error(3.14159e-7), format_error(float("inf")), format_error(None)
        ('3.1e-07', 'inf', '-')
    """
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.1e}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with left-aligned columns and a dashed rule under the header.

    Args:
        header: the column titles.
        rows: the cells, one sequence per row (converted with ``str``).

    Returns:
        The table, lines joined by newlines, trailing spaces removed.

    Example:
        >>> print(text_table(("a", "bb"), [(1, 2)]))
        a  bb
        -  --
        1  2
    """
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(r: Sequence[object]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; ``|`` inside a cell is escaped.

    Args:
        header: the column titles.
        rows: the cells, one sequence per row.

    Returns:
        The Markdown text.

    Example:
        >>> print(markdown_table(("x", "y"), [("a|b", 1)]))
        | x | y |
        |---|---|
        | a\\|b | 1 |
    """
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    """An HTML table with a caption; every cell is escaped.

    Args:
        header: the column titles.
        rows: the cells, one sequence per row.
        caption: the table's caption.

    Returns:
        The HTML text, one ``<table>`` element.

    Example:
        >>> html_table(("x",), [("<1>",)], "c")
        '<table><caption>c</caption><thead><tr><th>x</th></tr></thead><tbody><tr><td>&lt;1&gt;</td></tr></tbody></table>'
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


@dataclass(frozen=True)
class RegionResult:
    """One row of a report: a region, how many values were compared, the worst error and the verdict.

    Attributes:
        region: the region's name (:data:`focal_ref.testing.REGIONS`).
        cases: the number of values compared.
        max_rel_err: the worst error (inf for a failure without a number, NaN when skipped).
        tolerance: the rtol the region is held to.
        status: ``"pass"``, ``"FAIL"`` or ``"skipped"``.
        note: where the worst error or the failure happened, or why the region was skipped.
        cause: for a FAIL, ``"error"`` (raised, returned None or complex values, wrong shape),
            ``"non-finite"``, or ``""`` (too inaccurate).

    Example:
        >>> RegionResult("gradients", 12, 2.5e-7, 1.5e-5, "pass").short
        'pass 2.5e-07'
    """

    region: str
    cases: int
    max_rel_err: float
    tolerance: float
    status: str
    note: str = ""
    cause: str = ""

    @property
    def passed(self) -> bool:
        """True when the region ran and passed."""
        return self.status == "pass"

    @property
    def short(self) -> str:
        """The cell of a summary table: "pass 3.1e-07", "FAIL 1.0e+00", "FAIL error", "skipped"."""
        if self.status == "skipped":
            return "skipped"
        return f"{self.status} {self.cause or format_error(self.max_rel_err)}"

    def cells(self) -> tuple[str, ...]:
        """The row's cells in the order of the report's header."""
        return (
            self.region,
            str(self.cases),
            format_error(self.max_rel_err),
            format_error(self.tolerance),
            self.status,
            self.note,
        )


_HEADER = ("region", "cases", "max rel err", "tolerance", "result", "note")


@dataclass(frozen=True, repr=False)
class ConformanceReport:
    """The result of a check: ``.passed``, one :class:`RegionResult` per region in ``.rows``.

    ``str(report)`` is a plain-text table for the terminal; in a notebook it renders as an HTML table
    (``_repr_html_``) or Markdown (``_repr_markdown_``). Errors are printed with two significant digits.

    Attributes:
        name: the implementation's name.
        kind: ``"sigmoid"`` or ``"softmax"``.
        framework: ``"numpy"``, ``"torch"`` or ``"keras"``.
        dtype: the input dtype's name.
        rows: the :class:`RegionResult` of each region.

    Example:
        >>> row = RegionResult("moderate logits", 48, 0.0, 1e-14, "pass")
        >>> ConformanceReport("mine", "sigmoid", "numpy", "float64", (row,)).title
        'mine: sigmoid focal loss, numpy float64 -- PASSED'
    """

    name: str
    kind: str
    framework: str
    dtype: str
    rows: tuple[RegionResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when no region failed and at least one region ran."""
        return any(r.passed for r in self.rows) and not self.failed_regions

    @property
    def failed_regions(self) -> tuple[str, ...]:
        """The names of the regions that failed, in report order."""
        return tuple(r.region for r in self.rows if r.status == "FAIL")

    def row(self, region: str) -> RegionResult:
        """The row of ``region``.

        Args:
            region: a region name.

        Returns:
            Its :class:`RegionResult`.

        Raises:
            KeyError: if the report has no such row.
        """
        for r in self.rows:
            if r.region == region:
                return r
        raise KeyError(f"no region {region!r}; regions are {[r.region for r in self.rows]}")

    @property
    def title(self) -> str:
        """One line: the name, kind, framework, dtype and verdict."""
        verdict = "PASSED" if self.passed else "FAILED"
        return f"{self.name}: {self.kind} focal loss, {self.framework} {self.dtype} -- {verdict}"

    def __str__(self) -> str:
        return self.title + "\n" + text_table(_HEADER, [r.cells() for r in self.rows])

    __repr__ = __str__  # the table, rounded, also at a prompt and as a notebook's text/plain output

    def _repr_markdown_(self) -> str:
        return f"**{_md_cell(self.title)}**\n\n" + markdown_table(_HEADER, [r.cells() for r in self.rows])

    def _repr_html_(self) -> str:
        return html_table(_HEADER, [r.cells() for r in self.rows], self.title)


@dataclass(frozen=True, repr=False)
class SummaryTable:
    """Several reports side by side: one row per implementation, one column per region.

    Attributes:
        labels: the row labels.
        reports: the :class:`ConformanceReport` of each row.

    Example:
        >>> row = RegionResult("gradients", 4, 0.5, 1e-5, "FAIL", "worst at ...")
        >>> report = ConformanceReport("mine", "sigmoid", "torch", "float32", (row,))
        >>> print(SummaryTable(("mine",), (report,)))
        implementation  gradients     verdict
        --------------  ------------  -------
        mine            FAIL 5.0e-01  FAILED
    """

    labels: tuple[str, ...]
    reports: tuple[ConformanceReport, ...]

    def _rows(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        regions = [r.region for r in self.reports[0].rows] if self.reports else []
        header = ("implementation", *regions, "verdict")
        rows = []
        for label, report in zip(self.labels, self.reports, strict=True):
            cells = [report.row(region).short for region in regions]
            rows.append((label, *cells, "passed" if report.passed else "FAILED"))
        return header, rows

    def __str__(self) -> str:
        return text_table(*self._rows())

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return markdown_table(*self._rows())

    def _repr_html_(self) -> str:
        header, rows = self._rows()
        return html_table(header, rows, "max relative error per region (pass/FAIL against the tolerance)")


def summarize(reports: Sequence[ConformanceReport], labels: Sequence[str] | None = None) -> SummaryTable:
    """One table of several reports (same kind): a row per implementation, a column per region.

    Args:
        reports: the reports, each with the same regions.
        labels: the row labels (default: each report's name).

    Returns:
        A :class:`SummaryTable` (prints as text, renders as HTML in a notebook).

    Raises:
        ValueError: if the number of labels differs from the number of reports.

    Example:
        >>> row = RegionResult("moderate logits", 48, 0.0, 1e-14, "pass")
        >>> mine = ConformanceReport("mine", "sigmoid", "numpy", "float64", (row,))
        >>> print(summarize([mine]))
        implementation  moderate logits  verdict
        --------------  ---------------  -------
        mine            pass 0.0e+00     passed
    """
    reports = tuple(reports)
    label_tuple = tuple(labels) if labels is not None else tuple(r.name for r in reports)
    if len(label_tuple) != len(reports):
        raise ValueError(f"labels has {len(label_tuple)} entries for {len(reports)} reports")
    return SummaryTable(label_tuple, reports)
