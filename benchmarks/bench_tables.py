"""Markdown tables of the benchmark: kept bytes (exact, deterministic) and timings (dated, with the machine).

``kept_bytes_rows()`` measures what each implementation keeps for backward without timing anything
(a second or two per shape on a CPU); ``kept_bytes_table`` formats it. ``timing_tables`` formats the
JSON that ``bench_torch.py --json`` writes. scripts/update_tables.py writes these into
benchmarks/README.md between marker comments, and tests/test_tables.py checks the kept-bytes table
against a fresh measurement; timing tables carry their date and machine and are not compared.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_softmax  # noqa: E402
import bench_torch  # noqa: E402

SIGMOID_KEPT_ELEMENTS = 1_000_000


def kept_bytes_rows(softmax_shapes=bench_softmax.CPU_SHAPES) -> list[dict]:
    """Bytes kept for backward per element by every implementation, sigmoid and softmax (CPU, float32)."""
    rows = []
    impls, _ = bench_torch.implementations(fused=False)
    x, y = bench_torch.make_data(SIGMOID_KEPT_ELEMENTS, "cpu")
    for name, fn in impls.items():
        kept = bench_torch.saved_bytes(fn, x, y) / x.numel()
        rows.append(
            dict(
                loss="sigmoid",
                shape=[x.numel()],
                target="hard 0/1",
                implementation=name,
                kept_bytes_per_element=kept,
                must_move_bytes_per_element=bench_torch.MUST_MOVE_BYTES,
            )
        )
    for shape in softmax_shapes:
        for target in bench_softmax.TARGETS:
            impls, _ = bench_softmax.implementations(target)
            x, t = bench_softmax.make_data(shape, target, "cpu")
            for name, fn in impls.items():
                rows.append(
                    dict(
                        loss="softmax",
                        shape=list(shape),
                        target=target,
                        implementation=name,
                        kept_bytes_per_element=bench_torch.saved_bytes(fn, x, t) / x.numel(),
                        must_move_bytes_per_element=bench_softmax.must_move_bytes(x, t),
                    )
                )
    return rows


def _normalized(rows):
    """bench_torch.run's sigmoid rows lack the softmax rows' loss, target and shape: fill them in."""
    sigmoid = {
        "loss": "sigmoid",
        "target": "hard 0/1",
        "must_move_bytes_per_element": bench_torch.MUST_MOVE_BYTES,
    }
    return [
        {**sigmoid, "shape": [row.get("elements")], **row} if row.get("loss", "sigmoid") == "sigmoid" else row
        for row in rows
    ]


def _shape(row) -> str:
    return bench_softmax.shape_label(row["shape"]) if row["loss"] == "softmax" else f"{row['shape'][0]:.0e}"


def _pivot(rows, value, fmt):
    """One line per (loss, shape, target), one column per implementation: (header, lines)."""
    names = list(dict.fromkeys(row["implementation"] for row in rows))
    groups: dict[tuple, dict] = {}
    for row in rows:
        groups.setdefault((row["loss"], _shape(row), row["target"]), {})[row["implementation"]] = row
    lines = []
    for (loss, shape, target), cells in groups.items():
        must = next(iter(cells.values())).get("must_move_bytes_per_element")
        values = [fmt(value(cells[name])) if name in cells else "" for name in names]
        lines.append(
            f"| {loss} | {shape} | {target} | {'' if must is None else f'{must:.2f}'} | "
            + " | ".join(values)
            + " |"
        )
    header = [
        "| loss | shape | target | must B/el | " + " | ".join(names) + " |",
        "|---|---|---|---:|" + "---:|" * len(names),
    ]
    return header, lines


def kept_bytes_table(rows: list[dict]) -> str:
    """Kept bytes per element for each implementation, and the bytes any forward+backward must move."""
    rows = [row for row in _normalized(rows) if "kept_bytes_per_element" in row]
    out = []
    for loss in ("sigmoid", "softmax"):
        header, lines = _pivot(
            [r for r in rows if r["loss"] == loss],
            lambda r: r["kept_bytes_per_element"],
            lambda v: f"{v:.2f}",
        )
        out += (header if not out else ["", *header]) + lines
    return "\n".join(out)


def timing_tables(data: dict) -> str:
    """Forward+backward ms and the ratio to the baseline, per loss; headed by the date and the machine."""
    rows = [row for row in _normalized(data["rows"]) if "ms" in row]
    out = [
        f"Measured {data.get('date', 'date unknown')} on {data['device']}, torch {data['torch']}, float32, "
        f"median of {data.get('reps', '?')} interleaved rounds"
        + (", CPU time of the thread" if data.get("clock") == "cpu" else "")
        + (", allocator warmed as in a training loop" if data.get("allocator", "").startswith("warm") else "")
        + "; cells: ms (ratio to "
        "torchvision's formula for the sigmoid, to the plain formula for the softmax"
        + (": the median of the ratios within a round" if data.get("ratio") == "paired" else "")
        + "); "
        "fraction of a same-device copy in brackets where measured."
    ]
    bandwidth = {
        (r["loss"], r["elements"], r["implementation"]): r["fraction_of_copy"]
        for r in _normalized(data["rows"])
        if "fraction_of_copy" in r and "ms" not in r
    }
    for loss in ("sigmoid", "softmax"):
        selected = [r for r in rows if r["loss"] == loss]
        if not selected:
            continue

        def cell(r):
            fraction = r.get(
                "fraction_of_copy", bandwidth.get((r["loss"], r["elements"], r["implementation"]))
            )
            return f"{r['ms']:.2f} ({r['ratio']:.2f}x)" + ("" if fraction is None else f" [{fraction:.0%}]")

        header, lines = _pivot(selected, cell, str)
        out += ["", *header, *lines]
    out += ["", faults_sentence(rows)]
    return "\n".join(out)


def faults_sentence(rows: list[dict]) -> str:
    """Which timed rows paid page faults (the allocator's share of their time), from the rows' counts."""
    counted = [r for r in rows if "faults" in r]
    if not counted:
        return "Page faults were not counted in this run."
    paid = [r for r in counted if r["faults"] >= 1]
    if not paid:
        return "No implementation paid a page fault in the timed rounds."
    listed = "; ".join(f"{r['loss']} {_shape(r)} {r['implementation']} {r['faults']:,.0f}" for r in paid)
    return "Minor page faults per call, where any were paid in the timed rounds: " + (
        f"{listed}; no other row paid any."
    )


def markdown_tables(data: dict) -> str:
    """Both, for a bench_torch.py --json result (kept bytes from its own rows)."""
    return timing_tables(data) + "\n\nKept bytes per element:\n\n" + kept_bytes_table(data["rows"])
