"""Conformance checks: run anyone's focal loss over a battery of cases against the float64 reference.

::

    from focal_ref.testing import check_sigmoid_focal_loss
    report = check_sigmoid_focal_loss(my_loss, framework="torch")
    print(report)            # a plain-text table; in a notebook the report renders as an HTML table
    assert report.passed

The callable under test has the **documented signature** ::

    fn(logits, targets, *, alpha, gamma) -> loss

* sigmoid: ``logits`` and ``targets`` are 1-D float tensors of the framework (targets in [0, 1]); the result
  is the elementwise loss, shape ``(N,)``. ``alpha`` is a number in [0, 1] weighting the positive class
  (alpha_t = alpha*y + (1-alpha)*(1-y)) or ``None`` (alpha_t = 1).
* softmax: ``logits`` is ``(N, C)``; ``targets`` is ``(N,)`` integer class indices, or ``(N, C)`` float
  probabilities in the "soft labels" region; the result is the per-sample loss, shape ``(N,)``. ``alpha`` is
  ``None`` or a tuple of C per-class weights (FL = -sum_c y_c alpha_c (1-p_c)^gamma log p_c).

Anything else (other argument order, probabilities instead of logits, another alpha convention, a
reduced result, a module) goes through an **adapter** ``adapter(fn, logits, targets, *, alpha, gamma)``
that calls ``fn`` its own way and returns the documented result.

Regions (each a row of the report):

* ``moderate logits`` -- logits in [-3, 3], hard labels, several alpha and gamma: formula and conventions;
* ``saturated logits`` -- |logit| from 6 to 745, hard labels, easy (p_t -> 1) and hard (p_t -> 0) examples:
  clamps, epsilons, ``1 - sigmoid(x)`` and other cancellations;
* ``soft labels`` -- targets strictly between 0 and 1 (sigmoid) or probability vectors (softmax);
* ``gamma < 1 near saturation`` -- gamma = 0.25 and 0.5 where 1 - p_t is tiny or 0: NaN from a negative base;
* ``gradients`` -- d loss / d logits from the framework's autodiff (torch autograd; Keras through its
  backend: TensorFlow ``GradientTape``, torch autograd or ``jax.vjp``) on cases from every region above,
  against :func:`focal_ref.sigmoid_focal_loss_grad` / :func:`focal_ref.softmax_focal_loss_grad`.
  ``framework="numpy"`` cannot differentiate: the row is skipped.

Error measure: the inputs are first converted to the framework's tensors of ``dtype`` and read back, and
the reference is evaluated at those rounded inputs, so only the implementation's own error counts. The
error of a value is |got - want| / max(scale, floor) with the tolerance ``rtol`` below:

* losses: scale = |want|: a componentwise relative error;
* sigmoid gradients: scale = alpha_t m^gamma (gamma |1-2y| r CE + m), the sum of the magnitudes of the
  gradient's two terms (= |want| for hard labels), so a soft-label gradient that is small only through
  cancellation is not held to a relative accuracy that no floating-point code reaches;
* softmax gradients: scale = sum_c |d loss / d log p_c| over the sample's classes, which bounds every
  component of that sample's gradient (a normwise error: the backward pass of log_softmax is accurate to
  that scale, not componentwise);
* ``floor`` keeps values near the dtype's subnormal range to an absolute test.

Tolerances (``TOLERANCES``): rtol = 64 ulp for float32/float64 losses and 128 ulp for their gradients;
float16/bfloat16 (which should be computed in float32 inside) get 4 and 8 ulp of the half type.
A non-finite value where the reference is finite, an exception, or a result of the wrong shape fails the
region, with a note naming the case.

:func:`summarize` puts several reports in one table (a row per implementation, a column per region).
The same check runs from the command line, exiting 1 on failure::

    python -m focal_ref check package.module:function --kind sigmoid --framework torch
"""

from __future__ import annotations

import html
import importlib
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from . import _reference as ref

__all__ = [
    "REGIONS",
    "TOLERANCES",
    "RegionResult",
    "ConformanceReport",
    "SummaryTable",
    "check_sigmoid_focal_loss",
    "check_softmax_focal_loss",
    "summarize",
]

MODERATE, SATURATED, SOFT, LOW_GAMMA, GRADIENTS = (
    "moderate logits",
    "saturated logits",
    "soft labels",
    "gamma < 1 near saturation",
    "gradients",
)
REGIONS = (MODERATE, SATURATED, SOFT, LOW_GAMMA, GRADIENTS)

_EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
# Below the floor a value is compared in absolute terms: near the subnormal range relative accuracy is lost.
_FLOOR = {"float64": 2.0**-960, "float32": 2.0**-100, "float16": 2.0**-14, "bfloat16": 2.0**-100}
_ULPS = {"float64": (64, 128), "float32": (64, 128), "float16": (4, 8), "bfloat16": (4, 8)}

#: dtype -> (loss rtol, gradient rtol, floor)
TOLERANCES = {
    name: (_ULPS[name][0] * eps, _ULPS[name][1] * eps, _FLOOR[name]) for name, eps in _EPS.items()
}

_SATURATED = (6.0, 9.0, 12.0, 17.0, 25.0, 40.0, 88.0, 100.0, 745.0)
_LOW_GAMMAS = (0.25, 0.5)
_DEFAULT_GAMMAS = (0.0, 1.0, 2.0, 5.0)


# ----------------------------------------------------------------------------------------------
# the report


def _fmt_err(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.1e}"


@dataclass(frozen=True)
class RegionResult:
    """One row of a report: a region, how many values were compared, the worst error and the verdict."""

    region: str
    cases: int
    max_rel_err: float
    tolerance: float
    status: str  # "pass", "FAIL" or "skipped"
    note: str = ""
    cause: str = ""  # for a FAIL: "error" (raised, returned None, wrong shape), "non-finite" or "" (too inaccurate)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def short(self) -> str:
        """The cell of a summary table: "pass 3.1e-07", "FAIL 1.0e+00", "FAIL error", "FAIL non-finite", "skipped"."""
        if self.status == "skipped":
            return "skipped"
        return f"{self.status} {self.cause or _fmt_err(self.max_rel_err)}"

    def cells(self) -> tuple:
        return (
            self.region,
            str(self.cases),
            _fmt_err(self.max_rel_err),
            _fmt_err(self.tolerance),
            self.status,
            self.note,
        )


_HEADER = ("region", "cases", "max rel err", "tolerance", "result", "note")


def _text_table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|")


def _markdown_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _html_table(header, rows, caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


@dataclass(frozen=True, repr=False)
class ConformanceReport:
    """The result of a check: ``.passed``, one :class:`RegionResult` per region in ``.rows``.

    ``str(report)`` is a plain-text table for the terminal; in a notebook it renders as an HTML table
    (``_repr_html_``) or Markdown (``_repr_markdown_``). Errors are printed with two significant digits.
    """

    name: str
    kind: str
    framework: str
    dtype: str
    rows: tuple = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when no region failed and at least one region ran."""
        return any(r.passed for r in self.rows) and not self.failed_regions

    @property
    def failed_regions(self) -> tuple:
        return tuple(r.region for r in self.rows if r.status == "FAIL")

    def row(self, region: str) -> RegionResult:
        for r in self.rows:
            if r.region == region:
                return r
        raise KeyError(f"no region {region!r}; regions are {[r.region for r in self.rows]}")

    @property
    def title(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return f"{self.name}: {self.kind} focal loss, {self.framework} {self.dtype} -- {verdict}"

    def __str__(self) -> str:
        return self.title + "\n" + _text_table(_HEADER, [r.cells() for r in self.rows])

    __repr__ = __str__  # the table, rounded, also at a prompt and as a notebook's text/plain output

    def _repr_markdown_(self) -> str:
        return f"**{_md_cell(self.title)}**\n\n" + _markdown_table(_HEADER, [r.cells() for r in self.rows])

    def _repr_html_(self) -> str:
        return _html_table(_HEADER, [r.cells() for r in self.rows], self.title)


@dataclass(frozen=True, repr=False)
class SummaryTable:
    """Several reports side by side: one row per implementation, one column per region."""

    labels: tuple
    reports: tuple

    def _rows(self):
        regions = [r.region for r in self.reports[0].rows] if self.reports else []
        header = ("implementation", *regions, "verdict")
        rows = []
        for label, report in zip(self.labels, self.reports):
            cells = []
            for region in regions:
                cells.append(report.row(region).short)
            rows.append((label, *cells, "passed" if report.passed else "FAILED"))
        return header, rows

    def __str__(self) -> str:
        return _text_table(*self._rows())

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return _markdown_table(*self._rows())

    def _repr_html_(self) -> str:
        header, rows = self._rows()
        return _html_table(header, rows, "max relative error per region (pass/FAIL against the tolerance)")


def summarize(reports: Sequence[ConformanceReport], labels: Optional[Sequence[str]] = None) -> SummaryTable:
    """One table of several reports (same kind): a row per implementation, a column per region."""
    reports = tuple(reports)
    labels = tuple(labels) if labels is not None else tuple(r.name for r in reports)
    if len(labels) != len(reports):
        raise ValueError(f"labels has {len(labels)} entries for {len(reports)} reports")
    return SummaryTable(labels, reports)


# ----------------------------------------------------------------------------------------------
# frameworks: tensors in, float64 NumPy out, gradients


class _CheckFailure(Exception):
    """Raised inside a check when a result cannot be compared (None, wrong shape)."""


def _dtype_name(dtype) -> str:
    name = str(dtype).split(".")[-1]
    if name not in _EPS:
        raise ValueError(f"dtype must be one of {tuple(_EPS)}, got {dtype!r}")
    return name


class _NumPy:
    name = "numpy"
    can_differentiate = False

    def floats(self, array, dtype):
        return np.asarray(array, dtype=dtype)

    def indices(self, array):
        return np.asarray(array, dtype=np.int64)

    def to_numpy(self, value):
        return np.asarray(value, dtype=np.float64)


class _Torch:
    name = "torch"
    can_differentiate = True

    def __init__(self):
        import torch

        self.torch = torch

    def floats(self, array, dtype):
        return self.torch.tensor(np.asarray(array, dtype=np.float64)).to(getattr(self.torch, dtype))

    def indices(self, array):
        return self.torch.as_tensor(np.asarray(array, dtype=np.int64))

    def to_numpy(self, value):
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().to(self.torch.float64).numpy()
        return np.asarray(value, dtype=np.float64)

    def value_and_grad(self, call, x):
        x = x.clone().requires_grad_(True)
        out = call(x)
        if not isinstance(out, self.torch.Tensor):
            raise _CheckFailure(f"returned {type(out).__name__}, not a tensor")
        if not out.requires_grad:
            raise _CheckFailure("the result does not depend on the logits through autograd")
        (grad,) = self.torch.autograd.grad(out, x, grad_outputs=self.torch.ones_like(out), allow_unused=True)
        if grad is None:
            raise _CheckFailure("autograd gave no gradient for the logits")
        return self.to_numpy(out), self.to_numpy(grad)


class _Keras:
    name = "keras"

    def __init__(self):
        import keras

        self.keras = keras
        self.backend = keras.backend.backend()
        self.can_differentiate = self.backend in ("tensorflow", "torch", "jax")

    def floats(self, array, dtype):
        return self.keras.ops.cast(self.keras.ops.convert_to_tensor(np.asarray(array, dtype=np.float64)), dtype)

    def indices(self, array):
        return self.keras.ops.convert_to_tensor(np.asarray(array, dtype=np.int64))

    def to_numpy(self, value):
        if value is None:
            raise _CheckFailure("returned None")
        array = self.keras.ops.convert_to_numpy(self.keras.ops.cast(value, "float64"))
        return np.asarray(array, dtype=np.float64)

    def value_and_grad(self, call, x):
        if self.backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                tape.watch(x)
                out = call(x)
            if out is None:
                raise _CheckFailure("returned None")
            grad = tape.gradient(out, x)  # a non-scalar target is summed: each logit's total derivative
        elif self.backend == "torch":
            import torch

            x = x.detach().clone().requires_grad_(True)
            out = call(x)
            if out is None:
                raise _CheckFailure("returned None")
            (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), allow_unused=True)
        else:  # jax
            import jax
            import jax.numpy as jnp

            out, vjp = jax.vjp(call, x)
            if out is None:
                raise _CheckFailure("returned None")
            (grad,) = vjp(jnp.ones_like(out))
        if grad is None:
            raise _CheckFailure("autodiff gave no gradient for the logits")
        return self.to_numpy(out), self.to_numpy(grad)


def _setup(framework: str, dtype):
    """The framework wrapper and the dtype name, both checked before anything runs."""
    dtype = _dtype_name(dtype or ("float64" if framework == "numpy" else "float32"))
    if framework == "numpy" and dtype == "bfloat16":
        raise ValueError("dtype='bfloat16' needs framework='torch' or 'keras' (NumPy has no bfloat16)")
    return _framework(framework), dtype


def _framework(name: str):
    if name == "numpy":
        return _NumPy()
    if name == "torch":
        return _Torch()
    if name == "keras":
        return _Keras()
    raise ValueError(f"framework must be 'numpy', 'torch' or 'keras', got {name!r}")


# ----------------------------------------------------------------------------------------------
# comparing


def _num(value) -> str:
    return f"{value:.3g}"


@dataclass
class _Tally:
    """Accumulates one region: values compared, the worst error and where it happened."""

    rtol: float
    cases: int = 0
    worst: float = 0.0
    worst_note: str = ""
    nonfinite: int = 0
    nonfinite_note: str = ""
    error_note: str = ""

    def failure(self, note: str) -> None:
        if not self.error_note:
            self.error_note = note

    def compare(self, got, want, scale, floor, describe: Callable[[int], str], what: str) -> None:
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            self.failure(f"{what} has shape {got.shape}, expected {want.shape}")
            return
        self.cases += want.size
        bad = ~np.isfinite(got) & np.isfinite(want)
        if np.any(bad):
            i = int(np.flatnonzero(bad.ravel())[0])
            self.nonfinite += int(bad.sum())
            if not self.nonfinite_note:
                self.nonfinite_note = f"{_num(got.ravel()[i])} {what} at {describe(i)}"
        with np.errstate(invalid="ignore"):
            err = np.abs(got - want) / np.maximum(scale, floor)
        err = np.where(bad, np.inf, np.nan_to_num(err, nan=0.0))
        i = int(np.argmax(err.ravel()))
        if err.ravel()[i] > self.worst:
            self.worst = float(err.ravel()[i])
            self.worst_note = (
                f"worst at {describe(i)}: {what} {_num(got.ravel()[i])}, reference {_num(want.ravel()[i])}"
            )

    def result(self, region: str) -> RegionResult:
        if self.error_note:
            return RegionResult(region, self.cases, math.inf, self.rtol, "FAIL", self.error_note, "error")
        if self.nonfinite:
            note = f"{self.nonfinite} non-finite: {self.nonfinite_note}"
            return RegionResult(region, self.cases, math.inf, self.rtol, "FAIL", note, "non-finite")
        status = "pass" if self.worst <= self.rtol else "FAIL"
        return RegionResult(region, self.cases, self.worst, self.rtol, status, "" if status == "pass" else self.worst_note)


def _describe_exception(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > 90:
        message = message[:87] + "..."
    return f"raised {type(exc).__name__}: {message}" if message else f"raised {type(exc).__name__}"


def _alpha_text(alpha) -> str:
    if alpha is None or isinstance(alpha, numbers.Real):
        return f"alpha={_num(alpha) if alpha is not None else None}"
    return "alpha=(" + ", ".join(_num(a) for a in alpha) + ")"


# ----------------------------------------------------------------------------------------------
# the sigmoid battery


def _gamma_choices(gammas):
    """``pick(wanted)``: the wanted gammas among ``gammas`` (all of them if none is); and the gamma < 1 ones.

    With the default gammas the gamma < 1 region uses 0.25 and 0.5; with user gammas, those below 1.
    """
    def pick(wanted):
        return [g for g in gammas if g in wanted] or list(gammas)

    low = list(_LOW_GAMMAS) if gammas == _DEFAULT_GAMMAS else [g for g in gammas if g < 1.0]
    return pick, low


def _battery(moderate, saturated, soft_case, low, alphas, gammas, soft: bool):
    """{region: [(x, y, alpha, gamma), ...]} from one (x, y) pair per region; gradient cases reuse them."""
    pick, low_gammas = _gamma_choices(gammas)
    battery = {
        MODERATE: [(*moderate, a, g) for a in alphas for g in gammas],
        SATURATED: [(*saturated, a, g) for a in alphas for g in pick((0.0, 2.0))],
        SOFT: [(*soft_case, a, g) for a in alphas[:1] for g in pick((0.0, 1.0, 2.0))] if soft else [],
        LOW_GAMMA: [(*low, a, g) for a in alphas for g in low_gammas],
    }
    a0 = alphas[0]
    grads = [(*moderate, a0, g) for g in pick((0.0, 2.0))]
    grads += [(*saturated, a0, g) for g in pick((2.0,))]
    grads += [(*low, a0, g) for g in low_gammas]
    if soft:
        grads += [(*soft_case, a0, g) for g in pick((2.0,))]
    battery[GRADIENTS] = grads
    return battery


def _sigmoid_battery(seed: int, alphas, gammas, soft: bool):
    """{region: [(x, y, alpha, gamma), ...]} of float64 arrays; gradient cases reuse the loss cases."""
    rng = np.random.default_rng(seed)
    x_mod = np.clip(rng.normal(0.0, 1.5, 48), -3.0, 3.0)
    y_mod = rng.integers(0, 2, 48).astype(np.float64)
    big = np.array(_SATURATED)
    x_sat = np.concatenate([big, -big, big, -big])
    y_sat = np.concatenate([np.ones(2 * big.size), np.zeros(2 * big.size)])
    x_soft = np.concatenate([rng.normal(0.0, 3.0, 40), [-40.0, -17.0, 17.0, 40.0]])
    y_soft = np.concatenate([rng.uniform(0.02, 0.98, 40), [0.3, 0.7, 0.3, 0.7]])
    low = np.array((0.5, 3.0, 9.0, 17.0, 25.0, 40.0, 100.0, 745.0))
    x_low = np.concatenate([low, -low, low, -low])
    y_low = np.concatenate([np.ones(2 * low.size), np.zeros(2 * low.size)])

    return _battery((x_mod, y_mod), (x_sat, y_sat), (x_soft, y_soft), (x_low, y_low), alphas, gammas, soft)


def _sigmoid_grad_scale(x, y, alpha, gamma):
    """alpha_t m^gamma (gamma |1-2y| r CE + m): the magnitudes of the gradient's two terms, summed."""
    p, q, ce, m = ref._sigmoid_parts(x, y)
    r = np.where(m > 0, p * q / np.where(m > 0, m, 1.0), 0.0)
    return ref._binary_alpha_t(alpha, y) * m**gamma * (gamma * np.abs(1.0 - 2.0 * y) * r * ce + m)


def _call(fn, adapter, logits, targets, alpha, gamma):
    if adapter is None:
        return fn(logits, targets, alpha=alpha, gamma=gamma)
    return adapter(fn, logits, targets, alpha=alpha, gamma=gamma)


def _run_regions(battery, regions, dtype, run_case, skipped_notes):
    loss_rtol, grad_rtol, _ = TOLERANCES[dtype]
    rows = []
    for region in REGIONS:
        cases = battery.get(region, [])
        if region not in regions:
            rows.append(RegionResult(region, 0, math.nan, math.nan, "skipped", "not requested"))
            continue
        if region in skipped_notes:
            rows.append(RegionResult(region, 0, math.nan, math.nan, "skipped", skipped_notes[region]))
            continue
        if not cases:
            rows.append(RegionResult(region, 0, math.nan, math.nan, "skipped", "no cases for these gammas"))
            continue
        tally = _Tally(grad_rtol if region == GRADIENTS else loss_rtol)
        for case in cases:
            try:
                run_case(tally, case, region == GRADIENTS)
            except _CheckFailure as exc:
                tally.failure(str(exc))
            except Exception as exc:  # anything the implementation raises is a finding, not a crash
                tally.failure(_describe_exception(exc))
            if tally.error_note:
                break
        rows.append(tally.result(region))
    return tuple(rows)


def _name_of(fn) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", repr(fn))
    return f"{module}.{qualname}" if module else qualname


def _normalize_regions(regions, skip):
    chosen = REGIONS if regions is None else tuple(regions)
    unknown = [r for r in (*chosen, *tuple(skip or ())) if r not in REGIONS]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; regions are {REGIONS}")
    return tuple(r for r in chosen if r not in tuple(skip or ()))


def check_sigmoid_focal_loss(
    fn,
    *,
    framework: str = "numpy",
    adapter=None,
    dtype=None,
    alphas: Sequence = (0.25, 0.75),
    gammas: Sequence[float] = _DEFAULT_GAMMAS,
    regions: Optional[Iterable[str]] = None,
    skip: Optional[Iterable[str]] = None,
    name: Optional[str] = None,
    seed: int = 0,
) -> ConformanceReport:
    """Check an elementwise sigmoid focal loss against :func:`focal_ref.sigmoid_focal_loss`.

    Args:
        fn: ``fn(logits, targets, *, alpha, gamma) -> loss`` (see the module docstring), or anything
            ``adapter`` knows how to call.
        framework: ``"numpy"``, ``"torch"`` or ``"keras"``: the tensors ``fn`` receives and returns.
        adapter: ``adapter(fn, logits, targets, *, alpha, gamma)`` returning the elementwise loss, for a
            callable of another signature or alpha convention. ``None`` calls ``fn`` directly.
        dtype: ``"float64"``, ``"float32"`` (default for torch and keras), ``"float16"`` or ``"bfloat16"``;
            ``"float64"`` is the NumPy default.
        alphas: the alpha values tried (numbers in [0, 1] or None).
        gammas: the gamma values of the moderate region; the saturated, soft-label and gradient regions
            use 0, 1 and 2 from this list where present (all of it otherwise), and the gamma < 1 region
            uses 0.25 and 0.5 by default, or the values of a user list below 1 (skipped if there are none).
        regions / skip: run only these regions / leave these out (for example ``skip=("soft labels",)`` for a
            loss defined for hard labels only); skipped regions show as "skipped".
        name: the name shown in the report (default: the callable's qualified name).
        seed: seed of the random part of the battery (the battery is deterministic for a given seed).

    Returns:
        a :class:`ConformanceReport`.
    """
    fw, dtype = _setup(framework, dtype)
    chosen = _normalize_regions(regions, skip)
    alphas, gammas = tuple(alphas), tuple(float(g) for g in gammas)
    if not alphas or not gammas:
        raise ValueError("alphas and gammas must not be empty")
    battery = _sigmoid_battery(seed, alphas, gammas, soft=SOFT in chosen)
    floor = TOLERANCES[dtype][2]

    def run_case(tally, case, gradient):
        x, y, alpha, gamma = case
        xt, yt = fw.floats(x, dtype), fw.floats(y, dtype)
        xs, ys = fw.to_numpy(xt), fw.to_numpy(yt)  # the inputs as the framework holds them

        def describe(i):
            return f"x={_num(xs[i])}, y={_num(ys[i])}, {_alpha_text(alpha)}, gamma={_num(gamma)}"

        call = lambda logits: _call(fn, adapter, logits, yt, alpha, gamma)  # noqa: E731
        kw = dict(alpha=alpha, gamma=gamma)
        if gradient:
            want = ref.sigmoid_focal_loss_grad(xs, ys, **kw)
            scale = _sigmoid_grad_scale(xs, ys, alpha, gamma)
        else:
            want = ref.sigmoid_focal_loss(xs, ys, **kw)
            scale = np.abs(want)
        _compare_case(tally, fw, call, xt, gradient, want, scale, floor, describe)

    return _report(fn, name, "sigmoid", fw, dtype, battery, chosen, run_case)


# ----------------------------------------------------------------------------------------------
# the softmax battery


def _softmax_battery(seed: int, num_classes: int, alphas, gammas, soft: bool):
    rng = np.random.default_rng(seed)
    c = num_classes
    x_mod = np.clip(rng.normal(0.0, 1.5, (32, c)), -3.0, 3.0)
    t_mod = rng.integers(0, c, 32)

    def saturated_rows(bigs):
        rows, targets = [], []
        for big in bigs:
            easy = np.zeros(c)
            easy[0] = big
            rows += [easy, easy]  # target on the dominant class (p_t -> 1), then on another (p_t -> 0)
            targets += [0, 1]
            low = np.zeros(c)
            low[0] = -big
            rows.append(low)  # target on a class pushed down (p_t -> 0)
            targets.append(0)
        return np.array(rows), np.array(targets)

    x_sat, t_sat = saturated_rows(_SATURATED)
    x_low, t_low = saturated_rows((0.5, 3.0, 9.0, 17.0, 25.0, 40.0, 100.0, 745.0))
    x_soft = np.concatenate([rng.normal(0.0, 2.0, (24, c)), saturated_rows((17.0, 40.0))[0]])
    y_soft = rng.dirichlet(np.ones(c), x_soft.shape[0])

    return _battery((x_mod, t_mod), (x_sat, t_sat), (x_soft, y_soft), (x_low, t_low), alphas, gammas, soft)


def _softmax_grad_scale(x, targets, alpha, gamma):
    """sum_c |d loss / d log p_c| = sum_c w_c (1-p_c)^gamma (1 + gamma h_c) per sample, broadcast over classes."""
    x_last, w, _, gamma, _ = ref._check_softmax_inputs(x, targets, alpha, gamma, -1, None)
    log_p, u = ref._log_softmax_parts(x_last)
    p = np.exp(log_p)
    h = np.where(u > 0, -p * log_p / np.where(u > 0, u, 1.0), 1.0)
    scale = np.sum(w * u**gamma * (1.0 + gamma * h), axis=-1, keepdims=True)
    return np.broadcast_to(scale, x.shape)


def _default_class_alphas(num_classes: int):
    return (None, tuple(round(0.1 + 0.8 * c / max(num_classes - 1, 1), 2) for c in range(num_classes)))


def check_softmax_focal_loss(
    fn,
    *,
    framework: str = "numpy",
    adapter=None,
    dtype=None,
    num_classes: int = 5,
    alphas: Optional[Sequence] = None,
    gammas: Sequence[float] = _DEFAULT_GAMMAS,
    regions: Optional[Iterable[str]] = None,
    skip: Optional[Iterable[str]] = None,
    name: Optional[str] = None,
    seed: int = 0,
) -> ConformanceReport:
    """Check a per-sample softmax focal loss against :func:`focal_ref.softmax_focal_loss`.

    ``fn(logits, targets, *, alpha, gamma)`` gets ``(N, C)`` logits and ``(N,)`` integer class indices
    (``(N, C)`` probabilities in the "soft labels" region) and returns the ``(N,)`` per-sample loss; ``alpha``
    is ``None`` or a tuple of C per-class weights. ``alphas`` defaults to ``None`` and one per-class tuple
    (0.1 ... 0.9). The other arguments are as in :func:`check_sigmoid_focal_loss`.
    """
    fw, dtype = _setup(framework, dtype)
    chosen = _normalize_regions(regions, skip)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    alphas = _default_class_alphas(num_classes) if alphas is None else tuple(
        None if a is None else tuple(float(v) for v in a) for a in alphas
    )
    gammas = tuple(float(g) for g in gammas)
    if not alphas or not gammas:
        raise ValueError("alphas and gammas must not be empty")
    battery = _softmax_battery(seed, num_classes, alphas, gammas, soft=SOFT in chosen)
    floor = TOLERANCES[dtype][2]

    def run_case(tally, case, gradient):
        x, t, alpha, gamma = case
        xt = fw.floats(x, dtype)
        xs = fw.to_numpy(xt)
        is_soft = t.ndim == 2
        tt = fw.floats(t, dtype) if is_soft else fw.indices(t)
        ts = fw.to_numpy(tt) if is_soft else t

        def describe(i):
            n = i // num_classes if gradient else i
            target = "soft target" if is_soft else f"target={int(t[n])}"
            row = "[" + ", ".join(_num(v) for v in xs[n]) + "]"
            where = f", class {i % num_classes}" if gradient else ""
            return f"logits={row}{where}, {target}, {_alpha_text(alpha)}, gamma={_num(gamma)}"

        call = lambda logits: _call(fn, adapter, logits, tt, alpha, gamma)  # noqa: E731
        kw = dict(alpha=alpha, gamma=gamma)
        if gradient:
            want = ref.softmax_focal_loss_grad(xs, ts, **kw)
            scale = _softmax_grad_scale(xs, ts, alpha, gamma)
        else:
            want = ref.softmax_focal_loss(xs, ts, **kw)
            scale = np.abs(want)
        _compare_case(tally, fw, call, xt, gradient, want, scale, floor, describe)

    return _report(fn, name, "softmax", fw, dtype, battery, chosen, run_case)


def _compare_case(tally, fw, call, xt, gradient, want, scale, floor, describe):
    """Run one case (its loss, or its gradient by the framework's autodiff) and tally it against ``want``."""
    if gradient:
        _, grad = fw.value_and_grad(call, xt)
        tally.compare(grad, want, scale, floor, describe, "gradient")
        return
    out = call(xt)
    if out is None:
        raise _CheckFailure("returned None")
    tally.compare(fw.to_numpy(out), want, scale, floor, describe, "loss")


def _report(fn, name, kind, fw, dtype, battery, chosen, run_case) -> ConformanceReport:
    skipped = {} if fw.can_differentiate else {GRADIENTS: f"{fw.name} cannot differentiate"}
    rows = _run_regions(battery, chosen, dtype, run_case, skipped)
    return ConformanceReport(name or _name_of(fn), kind, fw.name, dtype, rows)


# ----------------------------------------------------------------------------------------------
# loading a callable by name (the command line)


def load_callable(spec: str):
    """``"package.module:attr.path"`` -> the object (``"package.module.function"`` also works)."""
    if ":" in spec:
        module_name, _, attr_path = spec.partition(":")
    else:
        module_name, _, attr_path = spec.rpartition(".")
    if not module_name or not attr_path:
        raise ValueError(f"expected 'package.module:function', got {spec!r}")
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj
