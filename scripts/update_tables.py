"""Write the README's and benchmarks/README.md's tables from the scripts that measure them (no drift).

    python scripts/update_tables.py                      # accuracy, agreement, kept bytes: measure, rewrite
    python scripts/update_tables.py --check              # exit 1 and show the difference where one is stale
    python scripts/update_tables.py --tables accuracy    # only some
    python scripts/update_tables.py --bench-json benchmarks/results/cpu.json   # also the (dated) timing table

Each table sits between marker comments in its Markdown file, ``<!-- table:NAME -->`` and
``<!-- /table:NAME -->``; only the text between them is replaced. The deterministic tables:

* ``accuracy`` (README.md): the float64 reference against mpmath, tests/report_accuracy.py;
* ``agreement`` (README.md): torch (CPU) and Keras on each backend against the reference,
  tests/report_agreement.py;
* ``kept-bytes`` (benchmarks/README.md): the bytes autograd keeps for backward per element, and the
  bytes any forward+backward must move, benchmarks/bench_tables.py.

tests/test_tables.py fails when one of them differs from a fresh run. The timing table (``timing``,
benchmarks/README.md) is written only from a ``bench_torch.py --json`` file, carries its date and
machine, and is not compared; a GPU run's JSON (the ``bench.json`` of scripts/gpu_check.sh) goes to
``timing-cuda`` instead.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCH_README = ROOT / "benchmarks" / "README.md"
for folder in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

DETERMINISTIC = ("accuracy", "agreement", "kept-bytes")


def block(text: str, name: str) -> str | None:
    """The text between the markers of table ``name`` (stripped), or None when the markers are missing."""
    match = re.search(
        rf"<!-- table:{re.escape(name)} -->\n(.*?)<!-- /table:{re.escape(name)} -->", text, re.S
    )
    return None if match is None else match.group(1).strip()


def replace(text: str, name: str, table: str) -> str:
    """``text`` with table ``name``'s block replaced by ``table``; ValueError when the markers are missing."""
    if block(text, name) is None:
        raise ValueError(f"no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
    pattern = rf"(<!-- table:{re.escape(name)} -->\n).*?(<!-- /table:{re.escape(name)} -->)"
    return re.sub(
        pattern, lambda m: m.group(1) + table.strip() + "\n" + m.group(2), text, count=1, flags=re.S
    )


def accuracy_table() -> str:
    """tests/report_accuracy.py's measurement as Markdown: worst error per function and its bound."""
    import report_accuracy

    lines = ["| function | cases | worst error | bound |", "|---|---:|---:|---:|"]
    for name, (errors, _) in report_accuracy.accuracy_errors().items():
        lines.append(
            f"| {name} | {errors.size} | {errors.max():.1e} | {report_accuracy.TOLERANCES[name]:.0e} |"
        )
    return "\n".join(lines)


def agreement_table() -> str:
    """tests/report_agreement.py's table for the CPU: torch, then Keras on TensorFlow, torch and JAX."""
    import report_agreement

    return report_agreement.markdown_table(report_agreement.columns(devices=["cpu"]))


def kept_bytes_table() -> str:
    import bench_tables

    return bench_tables.kept_bytes_table(bench_tables.kept_bytes_rows())


def timing_table(path: Path) -> str:
    import json

    import bench_tables

    return bench_tables.timing_tables(json.loads(Path(path).read_text()))


def timing_name(path: Path) -> str:
    """``timing`` for a CPU run's JSON, ``timing-cuda`` for a GPU's (gpu_check.sh's bench.json)."""
    import json

    return "timing" if json.loads(Path(path).read_text())["device"].startswith("cpu") else "timing-cuda"


MAKERS = {
    "accuracy": (README, accuracy_table),
    "agreement": (README, agreement_table),
    "kept-bytes": (BENCH_README, kept_bytes_table),
}


def stale(name: str, path: Path, fresh: str) -> str:
    """A unified diff of table ``name`` in ``path`` against ``fresh``; empty when they are the same."""
    current = block(path.read_text(), name)
    if current is None:
        return f"{path}: no markers for table {name}\n"
    diff = difflib.unified_diff(
        current.splitlines(), fresh.strip().splitlines(), f"{path.name} ({name})", "fresh run", lineterm=""
    )
    return "\n".join(diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(DETERMINISTIC), help="comma-separated table names")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 where a table is stale")
    parser.add_argument(
        "--bench-json", type=Path, help="write the timing table from this bench_torch.py --json"
    )
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--bench-readme", type=Path, default=BENCH_README)
    args = parser.parse_args(argv)
    files = {README: args.readme, BENCH_README: args.bench_readme}
    jobs = [(name, files[MAKERS[name][0]], MAKERS[name][1]) for name in args.tables.split(",") if name]
    if args.bench_json:
        jobs.append((timing_name(args.bench_json), args.bench_readme, lambda: timing_table(args.bench_json)))
    status = 0
    for name, path, make in jobs:
        label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        fresh = make()
        if args.check:
            diff = stale(name, path, fresh)
            if diff:
                print(diff)
                status = 1
            else:
                print(f"{label}: table {name} is up to date")
        else:
            path.write_text(replace(path.read_text(), name, fresh))
            print(f"{label}: table {name} written")
    return status


if __name__ == "__main__":
    sys.exit(main())
