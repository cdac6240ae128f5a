"""Train the Keras twin of the tiny detector with the recipe; write book/tuning/results/keras_detector.json.

python scripts/run_detection_keras.py --seeds 0 1 --backends torch jax --inits torch keras

The configs are the gamma x alpha grid's (``focal_ref.detection.sweeps.grid_configs``, setting
``one_object``) at gamma = 2, alpha = .25, the PyTorch runs of book/tuning/results/detection_grid.json.
Each Keras backend runs in its own process (``KERAS_BACKEND`` is read once, at import), one thread, in
the order given; a record's key adds ``backend`` and ``init`` to the grid's key.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from focal_ref.detection import sweeps

RESULTS = Path(__file__).resolve().parent.parent / "book" / "tuning" / "results"
RECIPE = {"gamma": 2.0, "alpha": 0.25}
"""The recipe's loss (the paper's gamma = 2, alpha = .25); prior .01, num_pos and the band are defaults."""


def recipe_items(seeds: list[int]) -> list[tuple[dict, object]]:
    """(key, config) of the grid runs with the recipe's gamma and alpha, one per seed."""
    return [(k, c) for k, c in sweeps.grid_configs(seeds) if all(k[n] == v for n, v in RECIPE.items())]


def worker(seeds: list[int], inits: list[str], out: Path) -> None:
    """Train every (seed, init) on this process's Keras backend; append one JSON record per run to ``out``."""
    from focal_ref.detection.keras_train import train_keras_detector

    for key, config in recipe_items(seeds):
        for init in inits:
            result = train_keras_detector(config, init=init)
            result.pop("model")
            record = {"key": {**key, "backend": result["backend"], "init": init}, "config": config.to_dict()}
            record.update(result)
            with out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{record['key']}: AP {result['AP']:.4f} ({result['wall_s']:.1f} s)", flush=True)


def backend_env(backend: str) -> dict[str, str]:
    """A worker's environment: its Keras backend, one thread for XLA (JAX), TensorFlow's logs quiet."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def versions(backends: list[str]) -> dict[str, str]:
    """Keras's version and those of the backends run (not importing them here: only their metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"keras": version("keras")}
    for b in backends:
        name = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[b]
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "missing"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    backends = ["torch", "jax", "tensorflow"]
    parser.add_argument("--backends", nargs="+", default=["torch", "jax"], choices=backends)
    parser.add_argument("--inits", nargs="+", default=["torch", "keras"], choices=["torch", "keras"])
    parser.add_argument("--out", type=Path, default=RESULTS / "keras_detector.json")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.seeds, args.inits, args.worker)
        return
    start = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            part = Path(tmp) / f"{backend}.jsonl"
            cmd = [sys.executable, __file__, "--worker", str(part), "--seeds", *map(str, args.seeds)]
            subprocess.run([*cmd, "--inits", *args.inits], env=backend_env(backend), check=True)
            records += [json.loads(line) for line in part.read_text().splitlines()]
    prov = sweeps.provenance(args.seeds, time.perf_counter() - start)
    prov["versions"].update(versions(args.backends))
    prov["keras_backends"] = args.backends
    prov["inits"] = args.inits
    prov["torch_records"] = "detection_grid.json (key setting one_object, gamma 2.0, alpha 0.25)"
    payload = {"experiment": "keras_detector", "provenance": prov, "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out} ({len(records)} runs, {prov['wall_s']} s)")


if __name__ == "__main__":
    main()
