"""Everything focal_ref has to prove on a GPU, in one run: the driver behind ``scripts/gpu_check.sh``.

Steps, each timed, each with its log under the output folder:

1. install focal_ref (``pip install --no-deps``; failing that, the working tree on PYTHONPATH) and, from
   ``wheels/gpu/`` (scripts/fetch_gpu_wheels.py), the wheels of whatever the machine lacks (Keras and its
   pure-Python dependencies, kornia), into a private folder put on PYTHONPATH: nothing the machine has
   is replaced;
2. every CUDA-parametrized test (``-k cuda`` in tests/test_torch.py and tests/test_blog.py), and
   tests/test_keras.py on the torch and the JAX backends (which compute on the GPU when there is one);
3. focal_ref.torch.sigmoid_focal_loss against torchvision's own ``ops.sigmoid_focal_loss`` (values and
   gradients, float32 and float64, on the CPU and on CUDA);
4. the agreement table with its CUDA column (tests/report_agreement.py);
5. the benchmark at GPU sizes (up to 64M elements), sigmoid and softmax (benchmarks/bench_torch.py);
6. ``summary.json`` and ``summary.md`` in ``$OUT`` (else benchmarks/results/gpu_check/, ignored).

The GPU machine is offline: wheels/gpu/ (ignored by git) must travel with the working tree. The
whole run is held to ``--budget`` seconds (default 420; the target is under 6 minutes): each step gets
what is left, 150 s kept for the benchmark, and a step cut short is reported as timed out.

Exit status 1 on any disagreement or failed step. Without CUDA (``--dry-run``, or no device) every
step still runs, on the CPU, at small sizes and on a subset of the Keras tests, and the summary says
which CUDA parts were skipped: tests/test_gpu_check.py runs it that way so that it cannot rot.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_torchvision import torchvision_comparison  # noqa: E402  (step 3; re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "wheels" / "gpu"
BENCH_RESERVE = 150.0  # seconds kept for the benchmark, the last step
DRY_KERAS_TESTS = "backend_is_supported or sigmoid_losses_match"  # the dry run's Keras subset (-k)


class Run:
    """The steps' records, the output folder and the environment the subprocesses get."""

    def __init__(self, out: Path, dry: bool, budget: float):
        self.out, self.dry, self.start, self.budget = out, dry, time.perf_counter(), budget
        self.steps: list[dict] = []
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            TF_CPP_MIN_LOG_LEVEL="3",
            TF_ENABLE_ONEDNN_OPTS="0",
            PYTHONHASHSEED="0",
            XLA_PYTHON_CLIENT_PREALLOCATE="false",
        )
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def record(self, name: str, status: str, seconds: float, detail: str = "") -> None:
        self.steps.append(dict(step=name, status=status, seconds=round(seconds, 1), detail=detail))
        print(f"[gpu_check] {name}: {status} ({seconds:.1f} s){' - ' + detail if detail else ''}", flush=True)

    def command(
        self, name: str, args: list[str], env: dict | None = None, timeout: float = 300, reserve: float = 0.0
    ) -> int:
        """Run a subprocess, its output in logs/<name>.log (its tail printed); record it; its exit code."""
        log = self.out / "logs" / f"{name.replace(' ', '_')}.log"
        timeout = max(10.0, min(timeout, self.left() - reserve))
        start = time.perf_counter()
        with open(log, "w") as handle:
            try:
                code = subprocess.run(
                    args,
                    cwd=ROOT,
                    env=dict(self.env, **(env or {})),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                ).returncode
            except subprocess.TimeoutExpired:
                code = 124
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        print("\n".join(f"    {line}" for line in tail), flush=True)
        # pytest's exit 5 means every selected test was deselected; not a failure of the code under test
        status = "ok" if code in (0, 5) else ("timed out" if code == 124 else f"failed (exit {code})")
        self.record(name, status, time.perf_counter() - start, tail[-1] if tail else "")
        return code


def install(run: Run, wheels: Path = WHEELS) -> None:
    """Step 1: focal_ref without dependencies, then the carried wheels the machine lacks."""
    start = time.perf_counter()
    try:
        importlib.metadata.version("focal_ref")
        detail = "focal_ref already installed"
    except importlib.metadata.PackageNotFoundError:
        pip = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
        ]
        code = subprocess.run(pip + ["-e", str(ROOT)], capture_output=True).returncode
        detail = "installed" if code == 0 else "pip install failed: the working tree is on PYTHONPATH instead"
    manifest_path = wheels / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    missing = {}
    for name, wheel in manifest.items():
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing[name] = wheel
    if missing:
        site = Path(tempfile.mkdtemp(prefix="gpu_check_site_"))
        code = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site)]
            + [str(wheels / w) for w in missing.values()],
            capture_output=True,
            text=True,
        )
        if code.returncode:  # no usable pip: a wheel is a zip archive of what goes on the path
            for wheel in missing.values():
                with zipfile.ZipFile(wheels / wheel) as archive:
                    archive.extractall(site)
            detail += "; pip --target failed, wheels unpacked instead"
        run.env["PYTHONPATH"] += os.pathsep + str(site)
        sys.path.append(str(site))
        detail += f"; wheels installed: {', '.join(sorted(missing))}"
    else:
        detail += "; no carried wheel needed" if manifest else "; no wheels/gpu/manifest.json"
    status = "ok"
    if importlib.util.find_spec("keras") is None and not missing.get("keras"):
        status, detail = (
            "failed",
            detail + "; Keras is missing (run scripts/fetch_gpu_wheels.py and carry wheels/gpu)",
        )
    run.record("install", status, time.perf_counter() - start, detail)


def cuda_test_files() -> list[str]:
    """Every test file with a CUDA parametrization or test, but this check's own and the Keras tests
    (those run separately, once per backend)."""
    skip = {"test_gpu_check.py", "test_keras.py", "test_tables.py"}
    return [
        f"tests/{path.name}"
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if path.name not in skip and "cuda" in path.read_text()
    ]


def pytest_args(workers: int) -> list[str]:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    if workers > 1 and importlib.util.find_spec("xdist") is not None:
        args += ["-n", str(workers)]
    return args


def _markdown_rows(rows: list[dict], keys: list[str]) -> list[str]:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [
            (f"{row[k]:.1f}" if k == "seconds" else f"{row[k]:.2e}")
            if isinstance(row[k], float)
            else str(row[k]).replace("|", "/")
            for k in keys
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU only, small sizes, a subset of tests")
    parser.add_argument(
        "--out", type=Path, help="output folder (default $OUT, else benchmarks/results/gpu_check)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=float(os.environ.get("GPU_CHECK_BUDGET", 420)),
        help="seconds for the whole run; steps are cut to what is left (default 420)",
    )
    parser.add_argument(
        "--workers", type=int, default=8, help="pytest-xdist workers per test run (default 8)"
    )
    parser.add_argument("--no-fused", action="store_true", help="leave torch.compile out of the benchmark")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results" / "gpu_check")
    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    dry = not cuda
    run = Run(out, dry, args.budget)
    device_name = torch.cuda.get_device_name() if cuda else f"no CUDA: CPU ({platform.processor() or 'cpu'})"
    print(
        f"[gpu_check] {device_name}; torch {torch.__version__}; Python {platform.python_version()}; "
        f"{'DRY RUN: the CUDA parts are skipped, CPU only, small sizes' if dry else 'CUDA run'}",
        flush=True,
    )
    install(run)
    workers = 1 if dry else args.workers

    # 2. the CUDA-parametrized torch tests (on a CPU every one skips: the run says so)
    code = run.command(
        "torch cuda tests",
        pytest_args(workers) + ["-k", "cuda", "-rs"] + cuda_test_files(),
        timeout=180,
        reserve=BENCH_RESERVE,
    )
    if dry and code in (0, 5):
        run.steps[-1]["detail"] = "skipped on this CPU (no CUDA device): " + run.steps[-1]["detail"]
    # the Keras tests on the torch and JAX backends: in the background while the next steps run
    keras_jobs = []
    keras_k = ["-k", os.environ.get("GPU_CHECK_KERAS_TESTS", DRY_KERAS_TESTS)] if dry else []
    for backend in ("torch", "jax"):
        if importlib.util.find_spec(backend) is None:
            run.record(f"keras {backend} tests", "skipped", 0.0, f"{backend} is not installed")
            continue
        log = open(out / "logs" / f"keras_{backend}_tests.log", "w")  # noqa: SIM115 - closed below
        env = dict(run.env, KERAS_BACKEND=backend, JAX_ENABLE_X64="1")
        proc = subprocess.Popen(
            pytest_args(max(1, workers // 2)) + keras_k + ["tests/test_keras.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        keras_jobs.append((backend, proc, log, time.perf_counter()))

    # 3. torchvision
    start = time.perf_counter()
    try:
        tv_rows, tv_source = torchvision_comparison(
            ["cpu"] + (["cuda"] if cuda else []), n=2_000 if dry else 100_000
        )
        status = "ok" if all(row["ok"] for row in tv_rows) else "DISAGREES"
        detail = tv_source + ("" if cuda else "; CUDA skipped (no device)")
    except Exception as error:  # recorded, and the other steps still run
        tv_rows, tv_source, status, detail = [], "", "failed", f"{type(error).__name__}: {error}"
    run.record("torchvision comparison", status, time.perf_counter() - start, detail)

    # 4. the agreement table (CUDA column where there is a device)
    agreement_args = [sys.executable, "tests/report_agreement.py", "--json", str(out / "agreement.json")]
    if dry:
        agreement_args += ["--devices", "cpu", "--keras-backends", ""]
    run.command("agreement table", agreement_args, timeout=240, reserve=BENCH_RESERVE)
    if (out / "agreement.json").exists():
        agreement = json.loads((out / "agreement.json").read_text())
        bad = len(agreement["disagreements"])
        run.steps[-1]["detail"] = (
            f"columns: {', '.join(agreement['columns'])}; {bad} disagreement(s)"
            + "".join(f"; {note}" for note in agreement["notes"])
        )

    for backend, proc, log, started in keras_jobs:
        try:
            code = proc.wait(timeout=max(10.0, run.left() - BENCH_RESERVE))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = 124
        log.close()
        tail = (
            (out / "logs" / f"keras_{backend}_tests.log")
            .read_text(errors="replace")
            .strip()
            .splitlines()[-1:]
        )
        status = "ok" if code in (0, 5) else ("timed out" if code == 124 else f"failed (exit {code})")
        where = "on the GPU" if cuda else f"on the CPU, subset -k '{keras_k[1]}'"
        run.record(
            f"keras {backend} tests",
            status,
            time.perf_counter() - started,
            f"{where}: {tail[0] if tail else ''}",
        )

    # 5. the benchmark, last, on a quiet machine
    bench = [sys.executable, "benchmarks/bench_torch.py", "--loss", "all", "--json", str(out / "bench.json")]
    if cuda:
        bench += ["--gpu-sizes", "--device", "cuda", "--reps", "5"] + (
            ["--no-fused"] if args.no_fused else []
        )
    else:
        bench += "--device cpu --sizes 2000 --softmax-shapes 2x19x8x8,64x80 --reps 1 --no-fused".split()
        bench += ["--sample-elements", "1"]
    run.command("benchmark", bench, timeout=300)
    if (out / "bench.json").exists():
        rows = json.loads((out / "bench.json").read_text())["rows"]
        largest = max((row["elements"] for row in rows), default=0)
        run.steps[-1]["detail"] = (
            f"{sum('ms' in row for row in rows)} timings of "
            f"{', '.join(sorted({row.get('loss', 'sigmoid') for row in rows}))}, "
            f"up to {largest:.2g} elements"
        )
    if dry:
        run.steps[-1]["detail"] = "CUDA sizes skipped (no device): a tiny CPU run; " + run.steps[-1]["detail"]

    total = time.perf_counter() - run.start
    failed = [step["step"] for step in run.steps if step["status"] not in ("ok", "skipped")]
    summary = dict(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        device=device_name,
        dry_run=dry,
        torch=torch.__version__,
        python=platform.python_version(),
        total_seconds=round(total, 1),
        passed=not failed,
        failed=failed,
        steps=run.steps,
        torchvision_source=tv_source,
        torchvision=tv_rows,
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        f"# gpu_check: {device_name}",
        "",
        f"{summary['date']}, torch {torch.__version__}, "
        f"{'dry run (no CUDA)' if dry else 'CUDA'}, total {total:.0f} s: "
        f"**{'passed' if not failed else 'FAILED: ' + ', '.join(failed)}**",
        "",
    ]
    lines += _markdown_rows(run.steps, ["step", "status", "seconds", "detail"])
    lines += ["", f"focal_ref.torch.sigmoid_focal_loss vs {tv_source}:", ""]
    lines += _markdown_rows(tv_rows, ["device", "dtype", "what", "worst", "rtol", "ok"])
    log = out / "logs" / "agreement_table.log"
    if log.exists():
        lines += ["", "Agreement (tests/report_agreement.py):", ""]
        lines += [line for line in log.read_text().splitlines() if line.startswith("|")]
    bench_json = out / "bench.json"
    if bench_json.exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_tables import markdown_tables

        lines += ["", markdown_tables(json.loads(bench_json.read_text()))]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print((out / "summary.md").read_text(), flush=True)
    print(
        f"[gpu_check] {'PASSED' if not failed else 'FAILED: ' + ', '.join(failed)} in {total:.0f} s; "
        f"summary in {out}",
        flush=True,
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
