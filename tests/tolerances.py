"""Tolerances per dtype, in one place (API decision 5): what every test of an implementation against the
float64 reference allows.

An error is measured as |out - ref| <= rtol * scale + atol, where ``ref`` is the float64 reference
evaluated on the inputs *after* rounding to the dtype under test (so only the implementation's own error
counts), ``scale`` is |ref| for a loss and for elementwise derivatives, and the row's largest |component|
for a softmax gradient or Hessian row; ``atol`` is the dtype's smallest normal number (values below it
are subnormal, flushed to 0 by some backends, and carry no relative accuracy).

* float64: a few ulp, times the amplification by gamma (up to 8) of the rounding of 1 - p_t; a
  derivative adds a few ulp per chain-rule term.
* float32: a few tens of ulp (a soft label's gradient cancels p - y against the focal term).
* float16 / bfloat16: computed in float32 inside and rounded once to the output dtype: about one eps
  of the output dtype (2**-11 resp. 2**-8), with room for the input's own rounding of a soft target.

``REFERENCE`` holds the float64 reference's own bounds against the mpmath oracle (tests/mp_reference.py),
asserted by tests/test_reference.py and printed by tests/report_accuracy.py.

Usage::

    from tolerances import tolerance
    rtol, atol = tolerance("float32", "grad")      # also accepts torch / numpy / keras dtypes
"""

from __future__ import annotations

import numpy as np

KINDS = ("loss", "grad", "hess")

# dtype name -> kind -> (rtol, atol)
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {
        "loss": (1e-13, float(np.finfo(np.float64).tiny)),
        "grad": (1e-12, 64 * float(np.finfo(np.float64).tiny)),
        "hess": (1e-11, 64 * float(np.finfo(np.float64).tiny)),
    },
    "float32": {
        "loss": (1e-5, float(np.finfo(np.float32).tiny)),
        "grad": (1e-4, 64 * float(np.finfo(np.float32).tiny)),
        "hess": (1e-4, 64 * float(np.finfo(np.float32).tiny)),
    },
    "float16": {
        "loss": (1e-3, float(np.finfo(np.float16).tiny)),
        "grad": (1e-3, float(np.finfo(np.float16).tiny)),
        "hess": (2e-3, float(np.finfo(np.float16).tiny)),
    },
    "bfloat16": {
        # bfloat16 has float32's exponent range: its smallest normal is float32's; derivatives are formed
        # in float32 inside, whose intermediates lose digits within a few orders of magnitude of that
        "loss": (8e-3, float(np.finfo(np.float32).tiny)),
        "grad": (8e-3, 64 * float(np.finfo(np.float32).tiny)),
        "hess": (1.6e-2, 64 * float(np.finfo(np.float32).tiny)),
    },
}

DTYPES = tuple(TOLERANCES)

# The float64 reference against mpmath (60 digits after cancellation): relative error bounds, with the
# scale as in tests/report_accuracy.py (an absolute test below 2.2e-308).
REFERENCE: dict[str, float] = {"loss": 1e-12, "grad": 1e-10, "hess": 1e-9}


def dtype_name(dtype) -> str:
    """'float32' for ``torch.float32``, ``np.float32``, ``"float32"``, a Keras dtype string, ..."""
    name = str(dtype).rsplit(".", 1)[-1].strip("'>")
    if name not in TOLERANCES:
        raise KeyError(f"no tolerances for dtype {dtype!r} (known: {', '.join(DTYPES)})")
    return name


def tolerance(dtype, kind: str = "loss") -> tuple[float, float]:
    """(rtol, atol) for ``kind`` ("loss", "grad" or "hess") in ``dtype``."""
    if kind not in KINDS:
        raise KeyError(f"kind must be one of {KINDS}, got {kind!r}")
    return TOLERANCES[dtype_name(dtype)][kind]


def rtol(dtype, kind: str = "loss") -> float:
    return tolerance(dtype, kind)[0]


def atol(dtype, kind: str = "loss") -> float:
    return tolerance(dtype, kind)[1]
