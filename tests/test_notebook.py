"""focal_ref.notebook.glue: MyST-NB's glue when it is installed, a plain display (or nothing) otherwise."""

import sys

import IPython.display

from focal_ref.notebook import glue


def test_glue_without_myst_nb_shows_or_skips_the_value(monkeypatch):
    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes `from myst_nb import glue` raise ImportError
    monkeypatch.setattr(IPython.display, "display", shown.append)
    glue("hidden", 1.25, display=False)
    glue("shown", 2.5)
    assert shown == [2.5]


def test_glue_with_myst_nb_records_the_value(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(
        myst_nb, "glue", lambda name, value, display=True: calls.append((name, value, display))
    )
    glue("key", 0.5, display=False)
    assert calls == [("key", 0.5, False)]


# ----------------------------------------------------------------------------------------------
# the book's helpers: number formats, glue of rounded values, tables, source listings

import math  # noqa: E402
import re  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from focal_ref import notebook  # noqa: E402


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (100000, {}, "100,000"),
        (np.int64(129778), {}, "129,778"),
        (129778.0, {}, "129,778"),
        (0.98916273, {}, "0.989"),
        (3.14159, {"digits": 5}, "3.1416"),
        (3.1e-7, {"digits": 2}, "3.1e-07"),
        (2.5e16, {"digits": 2}, "2.5e+16"),
        (1.5e7 + 0.5, {}, "1.50e+07"),
        (0.0, {}, "0"),
        (float("nan"), {}, "NaN"),
        (float("-inf"), {}, "-inf"),
        (True, {}, "True"),
    ],
)
def test_fmt_is_the_one_number_format(value, kwargs, text):
    assert notebook.fmt(value, **kwargs) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (3.2e-16, "< 1e-15"), (1e-15, "< 1e-14"), (0.04, "< 1e-1"), (-2e-3, "< 1e-2")],
)
def test_bound_is_the_next_power_of_ten_above(value, text):
    assert notebook.bound(value) == text
    if value:
        assert abs(value) < 10.0 ** int(text.split("e")[1])


def test_bound_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        notebook.bound(float("nan"))


def test_glue_helpers_store_rounded_values(monkeypatch):
    stored = {}
    monkeypatch.setattr(
        notebook, "glue", lambda key, value, display=True: stored.__setitem__(key, (value, display))
    )
    assert notebook.glue_num("a", 0.1 + 0.2) == 0.3
    assert notebook.glue_bound("b", 4e-16) == "< 1e-15"
    assert notebook.glue_text("c", 3) == "3"
    assert stored == {"a": (0.3, False), "b": ("< 1e-15", False), "c": ("3", False)}


def _report(rows, name="impl"):
    failed = tuple(r.region for r in rows if r.status == "FAIL")
    return SimpleNamespace(
        rows=tuple(rows),
        passed=not failed and any(r.status == "pass" for r in rows),
        failed_regions=failed,
        title=f"{name}: title",
    )


def _row(region, status, err, cause=""):
    return SimpleNamespace(
        region=region, cases=12000, max_rel_err=err, tolerance=1.2e-6, status=status, cause=cause, note=""
    )


def test_verdict_names_the_failed_regions():
    good = _report([_row("moderate logits", "pass", 1e-7)])
    bad = _report([_row("moderate logits", "pass", 1e-7), _row("soft labels", "FAIL", 0.5)])
    assert notebook.verdict(good) == "agrees in every region"
    assert notebook.verdict(bad) == "differs: soft labels"


def test_report_table_marks_pass_and_fail_and_keeps_numbers_whole():
    report = _report(
        [
            _row("moderate logits", "pass", 2.8e-6),
            _row("saturated", "FAIL", float("inf"), "non-finite"),
            _row("soft labels", "skipped", float("nan")),
        ]
    )
    page = notebook.report_table(report)._repr_html_()
    assert page.count("&#10003;") == 1 and page.count("&#10007;") == 1  # one check mark, one cross
    assert "#1a7f37" in page and "#cf222e" in page  # green and red
    # every number sits in a cell of its own that does not wrap
    for number in ["2.8e-06", "1.2e-06", "12,000"]:
        assert re.search(
            r'<td style="[^"]*white-space:nowrap[^"]*"[^>]*>' + re.escape(number) + "</td>", page
        ), number
    assert "overflow-x:auto" in page  # a narrow screen scrolls the table's own box
    text = notebook.report_table(report)._repr_markdown_()
    assert "| moderate logits | 12,000 | pass | 2.8e-06 |" in text and "| FAIL | inf |" in text


def test_summary_table_has_one_row_per_implementation():
    reports = {
        "ours": _report([_row("a", "pass", 1e-7), _row("b", "pass", 3e-7)]),
        "theirs": _report([_row("a", "pass", 1e-7), _row("b", "FAIL", 0.25)]),
    }
    table = notebook.summary_table(reports)
    assert [row[0] for row in table.rows] == ["ours", "theirs"]
    assert table.rows[0][2] == "all 2" and table.rows[1][2].text == "a"
    assert table.rows[0][3] == "3.0e-07" and table.rows[1][4].text == "b (2.5e-01)"
    assert "&#10007;" in table._repr_html_()


def test_table_rejects_a_ragged_row_and_escapes_html():
    with pytest.raises(ValueError, match="rows"):
        notebook.Table(["a", "b"], [["1"]])
    page = notebook.Table(["x"], [["<b>"]])._repr_html_()
    assert "&lt;b&gt;" in page and "<b>" not in page


def test_source_code_drops_the_docstring_but_keeps_its_first_line():
    import focal_ref

    code = notebook.source_code(focal_ref.sigmoid_focal_loss)
    assert code.startswith("def sigmoid_focal_loss(")
    assert ".. math::" not in code and ":math:" not in code and '"""' not in code
    assert "# Sigmoid focal loss" in code
    compile(code, "<listing>", "exec")  # still valid Python
    assert notebook.source_code(notebook.fmt, docstring=True).count('"""') == 2
    assert math.isfinite(len(code))


def test_long_text_cells_wrap_at_a_readable_width():
    report = _report([_row("saturated", "FAIL", 2.0, "non-finite at x = 745, gamma = 0.5, a long cause")])
    page = notebook.report_table(report)._repr_html_()
    cell = re.search(r'<td style="([^"]*)"[^>]*><div style="min-width:18em">non-finite', page)
    assert cell and "nowrap" not in cell.group(1)
    summary = notebook.summary_table({"x": report})._repr_html_()
    assert 'saturated: <span style="white-space:nowrap">non-finite at x' in summary


def test_every_cell_names_its_column_for_the_phone_layout():
    page = notebook.Table(["a b", "c"], [["x", 1.5]])._repr_html_()
    assert 'data-label="a b">x</td>' in page and 'data-label="c">1.5</td>' in page


def test_the_kept_docstring_line_has_no_rest_markup():
    def fn():
        """Derivative of :func:`focal_ref.sigmoid_focal_loss` (reduction ``"none"``), see :math:`x`."""
        return 1

    first = notebook.source_code(fn).splitlines()[1].strip()
    assert first == '# Derivative of focal_ref.sigmoid_focal_loss (reduction "none"), see x.'
