"""The cross-framework table: worst error of focal_ref.torch and focal_ref.keras against the reference.

Run ``python tests/report_agreement.py`` (about a minute). It measures on the shared battery of
``cases.py`` (every gamma in GAMMAS; alpha None and 0.25 for the sigmoid, None, 0.25 and per-class
weights for the softmax; hard and soft targets): PyTorch on every device present, and Keras on the
TensorFlow, PyTorch and JAX backends (KERAS_BACKEND is fixed per process, so each backend runs in a
subprocess of this script; JAX with JAX_ENABLE_X64=1; a backend not installed is left out and said
so). tests/test_torch.py and tests/test_keras.py assert the bounds; this prints the worst values, and
exits 1 if any is far outside them (``SANITY``) or not finite. ``--devices``, ``--keras-backends``
and ``--json`` serve scripts/gpu_check.sh; ``markdown_table(columns())`` is the README's table
(scripts/update_tables.py).

Each input is first rounded to the dtype under test and the float64 reference is evaluated on exactly
those values, so the error is the implementation's own. Errors are |out - ref| / |ref| over the
entries whose reference is above the dtype's smallest normal number (below it, flushed subnormals
carry no relative accuracy), for gradients above 64 times that (as in tests/test_keras.py: autodiff
multiplies intermediates that TensorFlow flushes to zero before the result is formed); gradients of a
softmax row are relative to the row's largest component. Keras gradients are measured in float64 and
float32 only, as in the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cases import GAMMAS, sigmoid_cases, softmax_cases  # noqa: E402

import focal_ref as ref  # noqa: E402

DTYPES = ("float64", "float32", "float16", "bfloat16")
SIGMOID_ALPHAS = (None, 0.25)
CLASS_ALPHAS = (None, 0.25, [0.1, 0.2, 0.3, 0.9, 1.0])
GRAD_FLOOR = 64
TINY = {
    "float64": np.finfo(np.float64).tiny,
    "float32": np.finfo(np.float32).tiny,
    "float16": float(np.finfo(np.float16).tiny),
    "bfloat16": np.finfo(np.float32).tiny,
}


def worst_error(out, expected, dtype, scale=None, floor=1.0):
    """Worst |out - expected| / scale over entries with scale > floor x the dtype's smallest normal."""
    out, expected = np.asarray(out, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected) if scale is None else np.broadcast_to(scale, expected.shape)
    if not np.all(np.isfinite(out)):
        return float("inf")
    normal = scale > floor * TINY[dtype]
    return float(np.max(np.abs(out - expected)[normal] / scale[normal])) if np.any(normal) else 0.0


def _record(rows, name, dtype, error):
    rows[(name, dtype)] = max(rows.get((name, dtype), 0.0), error)


def torch_rows(device):
    """{(function, dtype): worst error} for focal_ref.torch on ``device``."""
    import torch

    import focal_ref.torch as ft

    rows = {}
    logits, targets = sigmoid_cases()
    s_logits, index, soft = softmax_cases()
    for dtype in DTYPES:
        tdtype = getattr(torch, dtype)

        def rounded(values, tdtype=tdtype):
            tensor = torch.tensor(values, dtype=torch.float64).to(device=device, dtype=tdtype)
            return tensor, tensor.cpu().double().numpy()

        y, y64 = rounded(targets)
        soft_t, soft64 = rounded(soft)
        for gamma in GAMMAS:
            for alpha in SIGMOID_ALPHAS:
                x, x64 = rounded(logits)
                x.requires_grad_(True)
                loss = ft.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
                loss.backward(torch.ones_like(loss))
                _record(
                    rows,
                    "sigmoid_focal_loss",
                    dtype,
                    worst_error(
                        loss.detach().cpu().double(),
                        ref.sigmoid_focal_loss(x64, y64, alpha=alpha, gamma=gamma),
                        dtype,
                    ),
                )
                _record(
                    rows,
                    "sigmoid_focal_loss grad",
                    dtype,
                    worst_error(
                        x.grad.cpu().double(),
                        ref.sigmoid_focal_loss_grad(x64, y64, alpha=alpha, gamma=gamma),
                        dtype,
                        floor=GRAD_FLOOR,
                    ),
                )
            for alpha in CLASS_ALPHAS:
                for t, t64 in ((torch.tensor(index, device=device), index), (soft_t, soft64)):
                    x, x64 = rounded(s_logits)
                    x.requires_grad_(True)
                    loss = ft.softmax_focal_loss(x, t, alpha=alpha, gamma=gamma)
                    loss.sum().backward()
                    _record(
                        rows,
                        "softmax_focal_loss",
                        dtype,
                        worst_error(
                            loss.detach().cpu().double(),
                            ref.softmax_focal_loss(x64, t64, alpha=alpha, gamma=gamma),
                            dtype,
                        ),
                    )
                    expected = ref.softmax_focal_loss_grad(x64, t64, alpha=alpha, gamma=gamma)
                    _record(
                        rows,
                        "softmax_focal_loss grad",
                        dtype,
                        worst_error(
                            x.grad.cpu().double(),
                            expected,
                            dtype,
                            np.abs(expected).max(-1, keepdims=True),
                            GRAD_FLOOR,
                        ),
                    )
    return rows


def keras_rows():
    """{(function, dtype): worst error} for focal_ref.keras on this process's Keras backend."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    from keras import ops
    from test_keras import _value_and_grad  # the backend's own autodiff, as the tests take it

    import focal_ref.keras as fk

    rows = {}
    logits, targets = sigmoid_cases()
    s_logits, index, soft = softmax_cases()
    for dtype in DTYPES:

        def rounded(values, dtype=dtype):
            return np.asarray(
                ops.convert_to_numpy(ops.cast(ops.convert_to_tensor(values, dtype=dtype), "float64"))
            )

        x64, y64, sx64, soft64 = rounded(logits), rounded(targets), rounded(s_logits), rounded(soft)
        y, soft_t = ops.convert_to_tensor(y64, dtype=dtype), ops.convert_to_tensor(soft64, dtype=dtype)
        differentiable = dtype in (
            "float64",
            "float32",
        )  # as tests/test_keras.py: half-precision autodiff is the backend's
        for gamma in GAMMAS:
            for alpha in SIGMOID_ALPHAS:
                loss, grad = _value_and_grad(
                    lambda v, y=y, a=alpha, g=gamma: fk.sigmoid_focal_loss(v, y, alpha=a, gamma=g), x64, dtype
                )
                _record(
                    rows,
                    "sigmoid_focal_loss",
                    dtype,
                    worst_error(loss, ref.sigmoid_focal_loss(x64, y64, alpha=alpha, gamma=gamma), dtype),
                )
                if differentiable:
                    _record(
                        rows,
                        "sigmoid_focal_loss grad",
                        dtype,
                        worst_error(
                            grad,
                            ref.sigmoid_focal_loss_grad(x64, y64, alpha=alpha, gamma=gamma),
                            dtype,
                            floor=GRAD_FLOOR,
                        ),
                    )
            for alpha in CLASS_ALPHAS:
                for t, t64 in ((index, index), (soft_t, soft64)):
                    loss, grad = _value_and_grad(
                        lambda v, t=t, a=alpha, g=gamma: fk.softmax_focal_loss(v, t, alpha=a, gamma=g),
                        sx64,
                        dtype,
                    )
                    _record(
                        rows,
                        "softmax_focal_loss",
                        dtype,
                        worst_error(loss, ref.softmax_focal_loss(sx64, t64, alpha=alpha, gamma=gamma), dtype),
                    )
                    if differentiable:
                        expected = ref.softmax_focal_loss_grad(sx64, t64, alpha=alpha, gamma=gamma)
                        _record(
                            rows,
                            "softmax_focal_loss grad",
                            dtype,
                            worst_error(
                                grad, expected, dtype, np.abs(expected).max(-1, keepdims=True), GRAD_FLOOR
                            ),
                        )
    return rows


KERAS_BACKENDS = ("tensorflow", "torch", "jax")
NAMES = ("sigmoid_focal_loss", "sigmoid_focal_loss grad", "softmax_focal_loss", "softmax_focal_loss grad")
# Far outside every tested bound (tests/test_torch.py, tests/test_keras.py hold the tight ones): an error
# above these, or a non-finite one, is a disagreement, not a rounding difference (scripts/gpu_check.sh).
SANITY = {"float64": 1e-10, "float32": 1e-3, "float16": 4e-3, "bfloat16": 3e-2}


def _keras_device():
    """Where this process's Keras backend computes: "cpu", "cuda", "gpu", ..."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        return jax.default_backend()
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def _keras_in_subprocess(backend):
    """(device, rows) of focal_ref.keras on ``backend``, measured in a subprocess of this script."""
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        JAX_ENABLE_X64="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        TF_ENABLE_ONEDNN_OPTS="0",
        XLA_PYTHON_CLIENT_PREALLOCATE="false",
    )
    out = subprocess.run(
        [sys.executable, __file__, "--keras-json"], env=env, check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out.splitlines()[-1])
    return result["device"], {tuple(key.split("|")): value for key, value in result["rows"].items()}


def available_keras_backends(backends=KERAS_BACKENDS):
    """The backends of ``backends`` whose packages (and Keras) are installed here."""
    if importlib.util.find_spec("keras") is None:
        return []
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}
    return [b for b in backends if importlib.util.find_spec(module[b]) is not None]


def columns(devices=None, keras_backends=KERAS_BACKENDS, notes=None):
    """{column name: {(function, dtype): worst error}}: torch on each device, then each Keras backend.

    ``devices`` defaults to "cpu" plus "cuda" where present. A Keras backend whose package is missing is
    left out (and said so in ``notes``, a list, if given). A Keras column computed on an accelerator
    names it: "keras jax (gpu)"; on the CPU it is "keras jax".
    """
    import torch

    notes = [] if notes is None else notes
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result = {}
    for device in devices:
        name = f"torch cuda ({torch.cuda.get_device_name()})" if device == "cuda" else f"torch {device}"
        result[name] = torch_rows(device)
    present = available_keras_backends(keras_backends)
    for backend in keras_backends:
        if backend not in present:
            notes.append(f"keras {backend}: not installed here, column left out")
            continue
        device, rows = _keras_in_subprocess(backend)
        result[f"keras {backend}" if device == "cpu" else f"keras {backend} ({device})"] = rows
    return result


def markdown_table(cols):
    """The table as Markdown lines: one row per function and dtype, one column per framework."""
    lines = ["| function | dtype | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for name in NAMES:
        for dtype in DTYPES:
            cells = [f"{col[(name, dtype)]:.1e}" if (name, dtype) in col else "n/a" for col in cols.values()]
            lines.append(f"| {name} | {dtype} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def disagreements(cols):
    """(column, function, dtype, error) for every error above SANITY or not finite."""
    return [
        (column, name, dtype, error)
        for column, rows in cols.items()
        for (name, dtype), error in rows.items()
        if not error <= SANITY[dtype]
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keras-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", help="comma-separated torch devices (default: cpu, and cuda if present)")
    parser.add_argument(
        "--keras-backends",
        default=",".join(KERAS_BACKENDS),
        help="comma-separated Keras backends ('' for none; missing ones are left out)",
    )
    parser.add_argument("--json", help="also write the columns and any disagreement to this JSON file")
    args = parser.parse_args(argv)
    if args.keras_json:  # the subprocess: this backend's device and rows as one JSON line
        rows = {"|".join(key): value for key, value in keras_rows().items()}
        print(json.dumps({"device": _keras_device(), "rows": rows}))
        return 0
    notes = []
    devices = args.devices.split(",") if args.devices else None
    backends = [b for b in args.keras_backends.split(",") if b]
    cols = columns(devices, backends, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(markdown_table(cols))
    bad = disagreements(cols)
    for column, name, dtype, error in bad:
        print(f"DISAGREEMENT: {column} {name} {dtype}: {error:.2e} > {SANITY[dtype]:.0e}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "columns": {c: {"|".join(k): v for k, v in rows.items()} for c, rows in cols.items()},
                    "notes": notes,
                    "disagreements": bad,
                },
                handle,
                indent=1,
            )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
