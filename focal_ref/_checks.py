"""Validation of hyperparameters, shared by the NumPy, PyTorch and Keras modules.

Everything here looks only at Python numbers and shapes, never at tensor values, so the
framework modules can call it eagerly without a device synchronisation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal, Union, cast

REDUCTIONS = ("none", "mean", "sum")

AlphaLike = Union[None, float, Sequence[float]]  # noqa: UP007 (a runtime alias, py3.10)


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_gamma(gamma, *, positive: bool = False) -> float:
    """Return ``gamma`` as a float; it must be a finite real number >= 0 (> 0 if ``positive``)."""
    if not _is_real_number(gamma):
        raise TypeError(f"gamma must be a real number, got {type(gamma).__name__}: {gamma!r}")
    gamma = float(gamma)
    if math.isnan(gamma) or math.isinf(gamma):
        raise ValueError(f"gamma must be finite, got {gamma!r}")
    if positive and gamma <= 0:
        raise ValueError(f"gamma must be > 0 here (the loss divides by gamma), got {gamma!r}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    return gamma


def check_beta(beta) -> float:
    """Return ``beta`` (FL*'s shift) as a float; any finite real number."""
    if not _is_real_number(beta):
        raise TypeError(f"beta must be a real number, got {type(beta).__name__}: {beta!r}")
    beta = float(beta)
    if not math.isfinite(beta):
        raise ValueError(f"beta must be finite, got {beta!r}")
    return beta


def _check_unit_interval(value, name: str) -> float:
    if not _is_real_number(value):
        raise TypeError(
            f"{name} must be a real number in [0, 1] or None, got {type(value).__name__}: {value!r}"
        )
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return value


def check_binary_alpha(alpha) -> float | None:
    """``alpha`` for the binary losses: None (no weighting) or a number in [0, 1] for the positive class."""
    if alpha is None:
        return None
    return _check_unit_interval(alpha, "alpha")


def check_class_alpha(alpha, num_classes: int) -> tuple[float, ...] | None:
    """``alpha`` for the softmax losses, returned as a tuple of ``num_classes`` weights (or None).

    Accepts None, one number in [0, 1] (the same weight for every class), or a sequence of
    ``num_classes`` numbers in [0, 1] (one weight per class).
    """
    if alpha is None:
        return None
    if _is_real_number(alpha):
        return (_check_unit_interval(alpha, "alpha"),) * num_classes
    if isinstance(alpha, (str, bytes, set, frozenset, dict)) or not hasattr(alpha, "__len__"):
        # a set or a dict has a length but no class order: read as a sequence it would silently
        # weight the classes in hash order (or by the dict's keys)
        raise TypeError(
            f"alpha must be None, a number in [0, 1] or a sequence of {num_classes} per-class weights, "
            f"got {type(alpha).__name__}"
        )
    values = alpha.tolist() if hasattr(alpha, "tolist") else list(alpha)
    if not isinstance(
        values, list
    ):  # a 0-d array or tensor has __len__ and tolist, but tolist gives a number
        raise TypeError(
            f"alpha must be None, a number in [0, 1] or a sequence of {num_classes} per-class weights, "
            f"got a 0-d {type(alpha).__name__}"
        )
    if any(isinstance(v, (list, tuple)) for v in values):
        raise ValueError("alpha must be a flat sequence of per-class weights, got a nested one")
    if len(values) != num_classes:
        raise ValueError(
            f"alpha has {len(values)} per-class weights but the logits have {num_classes} classes"
        )
    return tuple(_check_unit_interval(v, f"alpha[{i}]") for i, v in enumerate(values))


def check_reduction(reduction) -> Literal["none", "mean", "sum"]:
    """``reduction`` itself, if it is one of ``"none"``, ``"mean"``, ``"sum"``; else TypeError/ValueError."""
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be one of {REDUCTIONS}, got {type(reduction).__name__}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return cast(Literal["none", "mean", "sum"], reduction)


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    """Normalise a class axis to a non-negative index, or raise naming ``name``."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(axis).__name__}")
    if ndim == 0:
        raise ValueError(f"logits must have a class axis ({name}={axis}), got a 0-d input")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for logits with {ndim} dimensions")
    return axis % ndim


def check_ignore_index(ignore_index) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    return int(ignore_index)


def check_same_shape(logits_shape, targets_shape, logits_name: str = "logits") -> None:
    if tuple(logits_shape) != tuple(targets_shape):
        raise ValueError(
            f"targets must have the shape of {logits_name}: {tuple(targets_shape)} != {tuple(logits_shape)}"
        )


def softmax_target_kind(logits_shape, targets_shape, axis: int, logits_name: str = "logits") -> str:
    """Say whether softmax ``targets`` are class ``"indices"`` or ``"probabilities"``, from shapes alone.

    Indices have the shape of the logits without the class axis; probabilities the shape of the logits.
    """
    logits_shape, targets_shape = tuple(logits_shape), tuple(targets_shape)
    if targets_shape == logits_shape:
        return "probabilities"
    if targets_shape == logits_shape[:axis] + logits_shape[axis + 1 :]:
        return "indices"
    raise ValueError(
        f"targets must have the shape of {logits_name} {logits_shape} (probabilities) or that shape "
        f"without the class axis {axis} (class indices), got {targets_shape}"
    )


def check_class_alpha_spec(alpha) -> AlphaLike:
    """``alpha`` for a softmax loss object, checked as far as it can be before C is known.

    Returns None, a float in [0, 1], or a tuple of floats in [0, 1] (its length is checked against
    the logits at the first call, by :func:`check_class_alpha`).
    """
    if alpha is None or _is_real_number(alpha):
        return None if alpha is None else _check_unit_interval(alpha, "alpha")
    values = None
    if not isinstance(alpha, (str, bytes, set, frozenset, dict)) and hasattr(alpha, "__len__"):
        values = alpha.tolist() if hasattr(alpha, "tolist") else list(alpha)
    if not isinstance(values, list):  # also a 0-d array, whose tolist() is a number
        raise TypeError(
            "alpha must be None, a number in [0, 1] or a sequence of per-class weights, "
            f"got {type(alpha).__name__}"
        )
    return check_class_alpha(values, len(values))
