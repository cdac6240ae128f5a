"""scripts/gpu_check.sh, the one command for the GPU machine, run here as its dry run so that it cannot rot.

The dry run does every step on the CPU at small sizes, with the CUDA parts skipped and said so, and a
subset of the Keras tests (GPU_CHECK_KERAS_TESTS). The other tests check the pieces a dry run on this
machine cannot reach: installing carried wheels, telling a wrong loss from torchvision's, and the wheel
list covering Keras's requirements.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check", "scripts/gpu_check.py")
fetch = _load("fetch_gpu_wheels", "scripts/fetch_gpu_wheels.py")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_KERAS_TESTS="backend_is_supported", OUT=str(out))
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc, out


def test_dry_run_does_every_step_and_says_what_it_skipped(dry_run):
    proc, out = dry_run
    assert (out / "summary.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == (0 if summary["passed"] else 1), proc.stdout[-3000:]
    assert summary["passed"], (summary["failed"], proc.stdout[-3000:])
    assert summary["dry_run"] is True and summary["device"].startswith("no CUDA")
    steps = {step["step"]: step for step in summary["steps"]}
    assert list(steps) == [
        "install",
        "torch cuda tests",
        "torchvision comparison",
        "agreement table",
        "keras torch tests",
        "keras jax tests",
        "benchmark",
    ]
    assert "skipped on this CPU (no CUDA device)" in steps["torch cuda tests"]["detail"]
    assert re.search(r"\d+ skipped", steps["torch cuda tests"]["detail"])  # the CUDA tests were collected
    assert "CUDA skipped" in steps["torchvision comparison"]["detail"]
    assert "CUDA sizes skipped" in steps["benchmark"]["detail"]
    assert "DRY RUN: the CUDA parts are skipped" in proc.stdout
    assert re.search(r"\[gpu_check\] wall time \d+ s, exit 0", proc.stdout)  # its own timer
    assert summary["total_seconds"] > 0
    # the outputs the GPU run is for: comparison rows, the agreement table, both losses benchmarked
    assert {(r["device"], r["dtype"], r["what"]) for r in summary["torchvision"]} == {
        ("cpu", d, w) for d in ("float64", "float32") for w in ("loss", "grad")
    }
    agreement = json.loads((out / "agreement.json").read_text())
    assert list(agreement["columns"]) == ["torch cpu"] and agreement["disagreements"] == []
    bench = json.loads((out / "bench.json").read_text())
    assert {row["loss"] for row in bench["rows"]} == {"sigmoid", "softmax"}
    markdown = (out / "summary.md").read_text()
    for text in (
        "| torch cuda tests |",
        "torchvision",
        "| softmax_focal_loss grad |",
        "Kept bytes per element",
    ):
        assert text in markdown


def _fake_wheel(folder: Path, name: str) -> str:
    """A minimal pure-Python wheel with one module ``name`` that defines VALUE = 42."""
    wheel = f"{name}-1.0-py3-none-any.whl"
    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}"
        for path, data in files.items()
    ]
    files[f"{name}-1.0.dist-info/RECORD"] = (
        "\n".join(record + [f"{name}-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    with zipfile.ZipFile(folder / wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def test_install_puts_only_the_missing_carried_wheels_on_the_path(tmp_path):
    name = "focal_ref_gpu_check_fake"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    manifest = {name: _fake_wheel(wheels, name), "numpy": "numpy-0-py3-none-any.whl"}  # numpy is installed
    (wheels / "manifest.json").write_text(json.dumps(manifest))
    run = gpu_check.Run(tmp_path / "out", dry=True, budget=60)
    path = list(sys.path)
    try:
        gpu_check.install(run, wheels)
        (step,) = run.steps
        assert step["status"] == "ok" and f"wheels installed: {name}" in step["detail"], step
        code = f"import {name}; print({name}.VALUE)"
        proc = subprocess.run([sys.executable, "-c", code], env=run.env, capture_output=True, text=True)
        assert proc.stdout.strip() == "42", proc.stderr
    finally:
        sys.path[:] = path


def test_torchvision_comparison_passes_focal_ref_and_fails_a_wrong_loss(monkeypatch):
    rows, source = gpu_check.torchvision_comparison(["cpu"], n=300)
    assert all(row["ok"] for row in rows), rows
    assert "torchvision" in source
    import focal_ref.torch as ft

    right = ft.sigmoid_focal_loss
    monkeypatch.setattr(
        ft, "sigmoid_focal_loss", lambda x, y, **kw: right(x, y, **kw) * (1 + 1e-2 * (y > 0.5))
    )
    rows, _ = gpu_check.torchvision_comparison(["cpu"], n=300)
    assert not any(row["ok"] for row in rows if row["what"] == "loss")


def test_the_wheel_list_covers_what_keras_requires():
    """If Keras is bumped and needs something new, the GPU machine would miss it: the list must follow."""
    needed = {
        re.split(r"[ ;<>=!~\[]", req)[0].lower().replace("_", "-")
        for req in importlib.metadata.requires("keras") or []
        if "extra ==" not in req
    }
    carried = {name.lower() for name in list(fetch.PURE) + list(fetch.BINARY)}
    assert needed - {"numpy"} <= carried, needed - carried
    assert fetch.PURE["keras"] == importlib.metadata.version("keras")


def test_fetch_manifest_names_each_wheel_by_its_distribution(tmp_path):
    for wheel in ("ml_dtypes-0.6.0-cp312-cp312-manylinux_2_27_x86_64.whl", "absl_py-2.5.1-py3-none-any.whl"):
        (tmp_path / wheel).touch()
    assert fetch.manifest(tmp_path) == {
        "absl-py": "absl_py-2.5.1-py3-none-any.whl",
        "ml-dtypes": "ml_dtypes-0.6.0-cp312-cp312-manylinux_2_27_x86_64.whl",
    }


def test_agreement_report_flags_large_and_non_finite_errors():
    report = _load("report_agreement", "tests/report_agreement.py")
    cols = {
        "a": {("sigmoid_focal_loss", "float64"): 1e-15, ("sigmoid_focal_loss", "float32"): float("nan")},
        "b": {("softmax_focal_loss grad", "float64"): 1.0, ("softmax_focal_loss", "bfloat16"): 4e-3},
    }
    flagged = {(column, name, dtype) for column, name, dtype, _ in report.disagreements(cols)}
    assert flagged == {("a", "sigmoid_focal_loss", "float32"), ("b", "softmax_focal_loss grad", "float64")}
