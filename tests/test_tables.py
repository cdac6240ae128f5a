"""No drift: the README's and benchmarks/README.md's tables are what their scripts print today.

Each deterministic table (the reference's accuracy against mpmath, the cross-framework agreement on the
CPU, the kept bytes of the benchmark) is measured afresh and compared with the block between its
markers. When a test here fails after a change to the package, run ``python scripts/update_tables.py``
and commit the tables it rewrites. Timings are not re-measured: the CPU timing table must be the one
written from the stored run (book/perf/results/cpu_bench.json) and carry its date and machine.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("update_tables", ROOT / "scripts" / "update_tables.py")
update_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_tables)

MARKED = {
    "accuracy": "README.md",
    "agreement": "README.md",
    "kept-bytes": "benchmarks/README.md",
    "timing": "benchmarks/README.md",
    "timing-cuda": "benchmarks/README.md",
}


def _fresh_equals_committed(name: str) -> None:
    path, make = update_tables.MAKERS[name]
    diff = update_tables.stale(name, path, make())
    assert not diff, f"{path.name}'s {name} table is stale; run python scripts/update_tables.py:\n{diff}"


@pytest.mark.parametrize("name, path", sorted(MARKED.items()))
def test_each_table_has_one_pair_of_markers(name, path):
    text = (ROOT / path).read_text()
    assert text.count(f"<!-- table:{name} -->") == 1 and text.count(f"<!-- /table:{name} -->") == 1


def test_accuracy_table_is_a_fresh_run():
    _fresh_equals_committed("accuracy")


def test_agreement_table_is_a_fresh_run():
    _fresh_equals_committed("agreement")


def test_kept_bytes_table_is_a_fresh_run():
    _fresh_equals_committed("kept-bytes")


def test_timing_table_carries_its_date_and_machine():
    table = update_tables.block((ROOT / "benchmarks" / "README.md").read_text(), "timing")
    assert re.match(r"Measured \d{4}-\d{2}-\d{2} on .+, torch \S+, float32", table), table[:200]
    assert "| sigmoid |" in table and "| softmax |" in table


def test_timing_table_is_the_stored_run():
    """The CPU timing table is what bench_tables.py writes from the run the perf chapter reads."""
    table = update_tables.block((ROOT / "benchmarks" / "README.md").read_text(), "timing")
    assert table == update_tables.timing_table(ROOT / "book" / "perf" / "results" / "cpu_bench.json").strip()


def test_faults_sentence_names_the_rows_that_paid():
    import bench_tables

    rows = [
        dict(loss="sigmoid", shape=[1e7], implementation="torchvision", faults=126958.0),
        dict(loss="sigmoid", shape=[1e7], implementation="focal_ref", faults=0.0),
    ]
    sentence = bench_tables.faults_sentence(rows)
    assert "sigmoid 1e+07 torchvision 126,958" in sentence and "focal_ref" not in sentence
    assert (
        bench_tables.faults_sentence(rows[1:]) == "No implementation paid a page fault in the timed rounds."
    )
    assert bench_tables.faults_sentence([dict(loss="sigmoid")]).startswith("Page faults were not counted")


def test_replace_touches_only_the_block_and_check_reports_a_stale_table(tmp_path):
    text = "intro\n<!-- table:accuracy -->\n| old |\n<!-- /table:accuracy -->\noutro 1.9e-15\n"
    new = update_tables.replace(text, "accuracy", "| new |\n")
    assert new == "intro\n<!-- table:accuracy -->\n| new |\n<!-- /table:accuracy -->\noutro 1.9e-15\n"
    assert update_tables.block(new, "accuracy") == "| new |"
    with pytest.raises(ValueError, match="markers"):
        update_tables.replace(text, "agreement", "| x |")
    readme = tmp_path / "README.md"
    readme.write_text(text)
    fake = update_tables.MAKERS["accuracy"]
    try:
        update_tables.MAKERS["accuracy"] = (update_tables.README, lambda: "| new |")
        assert update_tables.main(["--check", "--tables", "accuracy", "--readme", str(readme)]) == 1
        assert update_tables.main(["--tables", "accuracy", "--readme", str(readme)]) == 0
        assert update_tables.main(["--check", "--tables", "accuracy", "--readme", str(readme)]) == 0
    finally:
        update_tables.MAKERS["accuracy"] = fake
    assert readme.read_text() == new


def test_a_gpu_runs_timings_go_to_the_cuda_table(tmp_path):
    rows = [
        dict(
            elements=1000,
            implementation=name,
            ms=ms,
            ratio=ms / 2.0,
            kept_bytes_per_element=4.0,
            loss="sigmoid",
        )
        for name, ms in (("torchvision", 2.0), ("focal_ref", 1.0))
    ]
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(dict(device="NVIDIA H200", torch="2.11.0+cu130", reps=5, date="2026-12-01", rows=rows))
    )
    readme = tmp_path / "README.md"
    text = "".join(
        f"<!-- table:{name} -->\n{body}\n<!-- /table:{name} -->\n"
        for name, body in (("timing", "cpu"), ("timing-cuda", "none"))
    )
    readme.write_text(text)
    assert (
        update_tables.main(["--tables", "", "--bench-json", str(bench), "--bench-readme", str(readme)]) == 0
    )
    written = readme.read_text()
    assert update_tables.block(written, "timing") == "cpu"
    cuda = update_tables.block(written, "timing-cuda")
    assert cuda.startswith("Measured 2026-12-01 on NVIDIA H200, torch 2.11.0+cu130")
    assert "| sigmoid | 1e+03 | hard 0/1 | 20.00 | 2.00 (1.00x) | 1.00 (0.50x) |" in cuda
