"""Download here the wheels the GPU machine lacks, for ``scripts/gpu_check.sh`` to install there offline.

    python scripts/fetch_gpu_wheels.py            # into wheels/gpu/ (ignored by its own .gitignore)
    python scripts/fetch_gpu_wheels.py --list     # only list what is there

The GPU machine has Python 3.12 (CPython, manylinux x86_64), torch, torchvision, JAX, numpy, scipy,
mpmath, hypothesis and pytest, but no Keras and no internet. Keras 3 needs absl-py, h5py, ml-dtypes,
namex, numpy, optree, packaging and rich (rich needs markdown-it-py, mdurl and pygments; optree needs
typing-extensions). kornia (with kornia-rs) is the benchmark's second baseline. Each is pinned to the
version installed in this project's .venv (when it is installed here), so the GPU machine runs what the
tests here ran. Pure-Python packages are fetched for ``--platform any``, binary ones for
CPython 3.12 and ``manylinux2014_x86_64`` up to ``manylinux_2_28_x86_64`` (the glibc torch 2.11
needs); all with ``--only-binary=:all: --no-deps`` so that nothing is built or resolved against this
machine. gpu_check.sh installs only those of them that the GPU machine does not already have (JAX
there brings its own ml-dtypes, torch its own typing-extensions).

Finally it writes ``manifest.json`` (distribution -> wheel file) into the folder and prints the list.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "wheels" / "gpu"
# torch 2.11 wheels need glibc 2.28, so the GPU machine takes manylinux_2_28 wheels and older ones
PYTHON_VERSION, ABI = "3.12", "cp312"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64")

# distribution -> fallback pin when this environment does not have it (binary: needs a cp312 wheel)
PURE = {
    "keras": "3.15.1",
    "absl-py": "2.5.1",
    "namex": "0.1.0",
    "rich": "15.0.0",
    "markdown-it-py": "3.0.0",
    "mdurl": "0.1.2",
    "pygments": "2.21.0",
    "packaging": "26.4",
    "typing-extensions": "4.16.0",
    "kornia": "0.9.0",
}
BINARY = {"h5py": "3.14.0", "optree": "0.20.0", "ml-dtypes": "0.6.0", "kornia-rs": "0.2.0"}


def pin(name: str, fallback: str) -> str:
    """name==version, the version installed here if there is one."""
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{name}=={fallback}"


def download(requirements: list[str], dest: Path, binary: bool) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--dest",
        str(dest),
    ]
    if binary:
        command += ["--abi", ABI] + [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    else:
        command += ["--platform", "any", "--abi", "none"]
    subprocess.run(command + requirements, check=True)


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-")


def manifest(dest: Path) -> dict[str, str]:
    """distribution name (normalized) -> wheel file name, for every wheel in ``dest``."""
    return {_normalize(wheel.name.split("-")[0]): wheel.name for wheel in sorted(dest.glob("*.whl"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DIR, help="folder (default wheels/gpu/)")
    parser.add_argument("--list", action="store_true", help="only list the wheels already there")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    ignore = args.dest / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# downloaded by scripts/fetch_gpu_wheels.py; never committed\n*\n")
    if not args.list:
        download([pin(name, version) for name, version in PURE.items()], args.dest, binary=False)
        download([pin(name, version) for name, version in BINARY.items()], args.dest, binary=True)
    wheels = manifest(args.dest)
    (args.dest / "manifest.json").write_text(json.dumps(wheels, indent=1) + "\n")
    total = 0
    for name, wheel in wheels.items():
        size = (args.dest / wheel).stat().st_size
        total += size
        print(f"{name:<20} {wheel:<70} {size / 1e6:6.2f} MB")
    print(f"{len(wheels)} wheels, {total / 1e6:.1f} MB in {args.dest}")
    missing = sorted((set(map(_normalize, PURE)) | set(map(_normalize, BINARY))) - set(wheels))
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
