"""The two checks, against the reference: an elementwise sigmoid and a per-sample softmax focal loss.

Both validate their own arguments first (a bad ``gammas`` or ``alphas`` is the caller's mistake, raised as
``ValueError`` naming the argument, never reported as a fault of the implementation), build the battery
(:mod:`~focal_ref.testing.battery`), run each case in the framework (:mod:`~focal_ref.testing.frameworks`)
and tally it against the float64 reference at the inputs as the framework holds them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

import focal_ref

from . import arguments as args
from . import battery as bat
from .compare import Tally, alpha_text, num, run_regions
from .frameworks import CheckFailure, Framework, setup
from .regions import (
    ALL_REGIONS,
    ARGUMENT_REGIONS,
    GRADIENTS,
    REGIONS,
    SECOND_DERIVATIVES,
    SIGMOID_REGIONS,
    SOFT,
    TOLERANCES,
)
from .reports import ConformanceReport

__all__ = ["check_sigmoid_focal_loss", "check_softmax_focal_loss", "Adapter"]

#: ``adapter(fn, logits, targets, *, alpha, gamma) -> loss``
Adapter = Callable[..., Any]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_gammas(gammas: Iterable[float]) -> tuple[float, ...]:
    out = tuple(gammas)
    if not out:
        raise ValueError("gammas must not be empty")
    for g in out:
        if not _is_real(g) or not math.isfinite(g) or g < 0:
            raise ValueError(f"gammas must be finite real numbers >= 0, got {g!r} in gammas={list(out)!r}")
    return tuple(float(g) for g in out)


def _unit(value: Any, what: str) -> float:
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1] or None, got {value!r}")
    return float(value)


def _check_binary_alphas(alphas: Iterable[Any]) -> tuple[float | None, ...]:
    out = tuple(alphas) if not isinstance(alphas, (str, bytes)) else (alphas,)
    if not out:
        raise ValueError("alphas must not be empty")
    return tuple(
        None if a is None else _unit(a, f"each entry of alphas (got alphas={list(out)!r})") for a in out
    )


def _check_class_alphas(
    alphas: Iterable[Any] | None, num_classes: int
) -> tuple[tuple[float, ...] | None, ...]:
    if alphas is None:
        weights = tuple(round(0.1 + 0.8 * c / max(num_classes - 1, 1), 2) for c in range(num_classes))
        return (None, weights)
    out = tuple(alphas)
    if not out:
        raise ValueError("alphas must not be empty")
    result: list[tuple[float, ...] | None] = []
    for a in out:
        if a is None:
            result.append(None)
        elif _is_real(a):  # one weight for every class
            result.append((_unit(a, "a number in alphas"),) * num_classes)
        elif isinstance(a, (set, frozenset, dict, str, bytes)):
            raise ValueError(f"each entry of alphas must be None, a number or a sequence, got {a!r}")
        else:
            a = tuple(a)
            if len(a) != num_classes:
                raise ValueError(
                    f"each per-class entry of alphas needs num_classes={num_classes} weights, got {len(a)}"
                )
            result.append(tuple(_unit(v, "each per-class weight in alphas") for v in a))
    return tuple(result)


def _normalize_regions(
    regions: Iterable[str] | None, skip: Iterable[str] | None, known: tuple[str, ...] = ALL_REGIONS
) -> tuple[str, ...]:
    chosen = REGIONS if regions is None else tuple(regions)
    skipped = tuple(skip or ())
    unknown = [r for r in (*chosen, *skipped) if r not in known]
    if unknown:
        hint = (
            "; the argument regions are the sigmoid check's only"
            if set(unknown) & set(ARGUMENT_REGIONS)
            else ""
        )
        raise ValueError(f"unknown region(s) {unknown}; regions are {known}{hint}")
    return tuple(r for r in chosen if r not in skipped)


def _name_of(fn: Any) -> str:
    module = getattr(fn, "__module__", None)
    qualname = str(getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", repr(fn)))
    return f"{module}.{qualname}" if module else qualname


def _call(fn: Any, adapter: Adapter | None, logits: Any, targets: Any, alpha: Any, gamma: float) -> Any:
    if adapter is None:
        return fn(logits, targets, alpha=alpha, gamma=gamma)
    return adapter(fn, logits, targets, alpha=alpha, gamma=gamma)


def _loss(
    tally: Tally,
    fw: Framework,
    call: Callable[[Any], Any],
    xt: Any,
    want: np.ndarray,
    floor: float,
    describe: Callable[[int], str],
) -> None:
    out = call(xt)
    if out is None:
        raise CheckFailure("returned None")
    tally.compare(fw.to_numpy(out), want, np.abs(want), floor, describe, "loss")


def _report(
    fn: Any,
    name: str | None,
    kind: str,
    fw: Framework,
    dtype: str,
    battery: dict[str, list[Any]],
    chosen: tuple[str, ...],
    run_case: Any,
) -> ConformanceReport:
    skipped = {}
    if not fw.can_differentiate:
        skipped = {
            GRADIENTS: f"{fw.name} cannot differentiate",
            SECOND_DERIVATIVES: f"{fw.name} cannot differentiate",
        }
    rows = run_regions(battery, chosen, dtype, run_case, skipped)
    return ConformanceReport(name or _name_of(fn), kind, fw.name, dtype, rows)


def check_sigmoid_focal_loss(
    fn: Any,
    *,
    framework: str = "numpy",
    adapter: Adapter | None = None,
    dtype: Any = None,
    alphas: Sequence[float | None] = (0.25, 0.75),
    gammas: Sequence[float] = bat.DEFAULT_GAMMAS,
    regions: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    name: str | None = None,
    seed: int = 0,
) -> ConformanceReport:
    """Check an elementwise sigmoid focal loss against :func:`focal_ref.sigmoid_focal_loss`.

    FL = alpha_t (1 - p_t)^gamma CE (Lin et al. 2017, https://arxiv.org/abs/1708.02002), checked region by
    region (:mod:`focal_ref.testing`).

    Args:
        fn: ``fn(logits, targets, *, alpha, gamma) -> loss`` (see :mod:`focal_ref.testing`), or anything
            ``adapter`` knows how to call.
        framework: ``"numpy"``, ``"torch"`` or ``"keras"``: the tensors ``fn`` receives and returns.
        adapter: ``adapter(fn, logits, targets, *, alpha, gamma)`` returning the elementwise loss, for a
            callable of another signature or alpha convention (:mod:`focal_ref.testing.adapters`).
            ``None`` calls ``fn`` directly.
        dtype: ``"float64"``, ``"float32"`` (default for torch and keras), ``"float16"`` or ``"bfloat16"``;
            ``"float64"`` is the NumPy default.
        alphas: the alpha values tried (numbers in [0, 1] or None).
        gammas: the gamma values (finite, >= 0) of the moderate region; the saturated, soft-label and
            derivative regions use 0, 1 and 2 from this list where present (all of it otherwise), and the
            gamma < 1 region uses 0.25 and 0.5 by default, or the values of a user list below 1.
        regions: run only these regions (default :data:`~focal_ref.testing.REGIONS`); add
            ``"second derivatives"`` to check d^2 FL / dx^2 through the framework's autodiff, and
            :data:`~focal_ref.testing.ARGUMENT_REGIONS` (``"weight"``, ``"pos_weight"``,
            ``"ignore_index"``) to check those keyword arguments, each reduction and the gradient
            (:mod:`focal_ref.testing.arguments`; ``fn`` or ``adapter`` then also receives ``reduction``
            and the argument as keywords).
        skip: leave these regions out (for example ``skip=("soft labels",)`` for a hard-label loss).
        name: the name shown in the report (default: the callable's qualified name).
        seed: seed of the random part of the battery.

    Returns:
        A :class:`~focal_ref.testing.ConformanceReport`.

    Raises:
        ValueError: for an unknown framework, dtype or region, or invalid ``alphas`` / ``gammas``.
        ImportError: if the framework is not installed.

    Example:
        >>> check_sigmoid_focal_loss(focal_ref.sigmoid_focal_loss).passed
        True
    """
    fw, dtype_ = setup(framework, dtype)
    chosen = _normalize_regions(regions, skip, SIGMOID_REGIONS)
    alpha_values, gamma_values = _check_binary_alphas(alphas), _check_gammas(gammas)
    battery: dict[str, list[Any]] = dict(
        bat.sigmoid_battery(seed, alpha_values, gamma_values, soft=SOFT in chosen)
    )
    if set(chosen) & set(ARGUMENT_REGIONS):
        battery.update(args.argument_battery(seed, alpha_values, gamma_values, dtype_))
    floor = TOLERANCES[dtype_][2]

    def run_case(tally: Tally, case: Any, region: str) -> None:
        if region in ARGUMENT_REGIONS:
            target = fn if adapter is None else adapter

            def call_with(logits: Any, targets: Any, **kwargs: Any) -> Any:
                return (
                    fn(logits, targets, **kwargs)
                    if adapter is None
                    else adapter(fn, logits, targets, **kwargs)
                )

            args.run_argument_case(tally, case, call_with, target, fw, dtype_, floor)
            return
        x, y, alpha, gamma = case
        xt, yt = fw.floats(x, dtype_), fw.floats(y, dtype_)
        xs, ys = fw.to_numpy(xt), fw.to_numpy(yt)  # the inputs as the framework holds them

        def describe(i: int) -> str:
            return f"x={num(xs[i])}, y={num(ys[i])}, {alpha_text(alpha)}, gamma={num(gamma)}"

        def call(logits: Any) -> Any:
            return _call(fn, adapter, logits, yt, alpha, gamma)

        kw = dict(alpha=alpha, gamma=gamma)
        if region == GRADIENTS:
            _, grad = fw.value_and_grad(call, xt)
            want = focal_ref.sigmoid_focal_loss_grad(xs, ys, **kw)
            tally.compare(
                grad, want, bat.sigmoid_grad_scale(xs, ys, alpha, gamma), floor, describe, "gradient"
            )
        elif region == SECOND_DERIVATIVES:
            (got,) = fw.second_derivatives(call, xt, [np.ones(xs.shape)])
            want = bat.sigmoid_second_derivative(xs, ys, alpha, gamma)
            scale = np.abs(want) + bat.sigmoid_grad_scale(xs, ys, alpha, gamma)
            tally.compare(got, want, scale, floor, describe, "second derivative")
        else:
            _loss(tally, fw, call, xt, focal_ref.sigmoid_focal_loss(xs, ys, **kw), floor, describe)

    return _report(fn, name, "sigmoid", fw, dtype_, battery, chosen, run_case)


def check_softmax_focal_loss(
    fn: Any,
    *,
    framework: str = "numpy",
    adapter: Adapter | None = None,
    dtype: Any = None,
    num_classes: int = 5,
    alphas: Sequence[Any] | None = None,
    gammas: Sequence[float] = bat.DEFAULT_GAMMAS,
    regions: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    name: str | None = None,
    seed: int = 0,
) -> ConformanceReport:
    """Check a per-sample softmax focal loss against :func:`focal_ref.softmax_focal_loss`.

    FL = -sum_c y_c alpha_c (1 - p_c)^gamma log p_c (https://arxiv.org/abs/1708.02002).
    ``fn(logits, targets, *, alpha, gamma)`` gets ``(N, C)`` logits and ``(N,)`` integer class indices
    (``(N, C)`` probabilities in the "soft labels" region) and returns the ``(N,)`` per-sample loss;
    ``alpha`` is ``None`` or a tuple of C per-class weights.

    Args:
        fn: the loss, or anything ``adapter`` knows how to call.
        framework: as in :func:`check_sigmoid_focal_loss`.
        adapter: as in :func:`check_sigmoid_focal_loss`, returning the per-sample loss.
        dtype: as in :func:`check_sigmoid_focal_loss`.
        num_classes: C, an int >= 2.
        alphas: the alphas tried, each None, a number in [0, 1] (one weight for every class, passed to
            ``fn`` as a tuple of C equal weights) or C per-class weights in [0, 1]. Default: None and the
            per-class weights 0.1 ... 0.9.
        gammas: as in :func:`check_sigmoid_focal_loss`.
        regions: as in :func:`check_sigmoid_focal_loss`; ``"second derivatives"`` checks the per-sample
            C x C Hessian.
        skip: as in :func:`check_sigmoid_focal_loss`.
        name: the name shown in the report.
        seed: seed of the random part of the battery.

    Returns:
        A :class:`~focal_ref.testing.ConformanceReport`.

    Raises:
        ValueError: for an unknown framework, dtype or region, a bad ``num_classes``, or invalid
            ``alphas`` (a wrong number of per-class weights, a weight outside [0, 1]) or ``gammas``.
        ImportError: if the framework is not installed.

    Example:
        >>> check_softmax_focal_loss(focal_ref.softmax_focal_loss, alphas=[0.25]).passed
        True
    """
    fw, dtype_ = setup(framework, dtype)
    chosen = _normalize_regions(regions, skip)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    c = int(num_classes)
    alpha_values, gamma_values = _check_class_alphas(alphas, c), _check_gammas(gammas)
    battery = bat.softmax_battery(seed, c, alpha_values, gamma_values, soft=SOFT in chosen)
    floor = TOLERANCES[dtype_][2]

    def run_case(tally: Tally, case: bat.Case, region: str) -> None:
        x, t, alpha, gamma = case
        xt = fw.floats(x, dtype_)
        xs = fw.to_numpy(xt)
        is_soft = t.ndim == 2
        tt = fw.floats(t, dtype_) if is_soft else fw.indices(t)
        ts = fw.to_numpy(tt) if is_soft else t
        per_row = {GRADIENTS: c, SECOND_DERIVATIVES: c * c}.get(region, 1)

        def describe(i: int) -> str:
            n = i // per_row
            target = (
                "soft target [" + ", ".join(num(v) for v in ts[n]) + "]" if is_soft else f"target={int(t[n])}"
            )
            row = "[" + ", ".join(num(v) for v in xs[n]) + "]"
            where = f", class {(i % per_row) // (per_row // c)}" if per_row > 1 else ""
            return f"logits={row}{where}, {target}, {alpha_text(alpha)}, gamma={num(gamma)}"

        def call(logits: Any) -> Any:
            return _call(fn, adapter, logits, tt, alpha, gamma)

        kw = dict(alpha=alpha, gamma=gamma)
        if region == GRADIENTS:
            _, grad = fw.value_and_grad(call, xt)
            want = focal_ref.softmax_focal_loss_grad(xs, ts, **kw)
            tally.compare(
                grad, want, bat.softmax_grad_scale(xs, ts, alpha, gamma), floor, describe, "gradient"
            )
        elif region == SECOND_DERIVATIVES:
            directions = [np.broadcast_to(np.eye(c)[k], xs.shape).copy() for k in range(c)]
            got = np.stack(fw.second_derivatives(call, xt, directions), axis=-1)
            want = bat.softmax_second_derivatives(xs, ts, alpha, gamma)
            gscale = bat.softmax_grad_scale(xs, ts, alpha, gamma)
            row_scale = np.max(np.abs(want), axis=(1, 2)) + np.max(gscale, axis=1)
            scale = np.broadcast_to(row_scale[:, None, None], want.shape)
            tally.compare(got, want, scale, floor, describe, "second derivative")
        else:
            _loss(tally, fw, call, xt, focal_ref.softmax_focal_loss(xs, ts, **kw), floor, describe)

    return _report(fn, name, "softmax", fw, dtype_, battery, chosen, run_case)
