"""The reference's building blocks: input conversion, reductions, and the stable pieces in log space.

Every loss and derivative of the reference (:mod:`focal_ref._reference`, :mod:`focal_ref._softmax`,
:mod:`focal_ref._hessian`) is assembled from these. Two are public (API decision 4):
:func:`sigmoid_parts` and :func:`log_softmax_parts`, so that other implementations and the conformance
checker can use the same accurate pieces. Math: Lin et al., "Focal Loss for Dense Object Detection"
(https://arxiv.org/abs/1708.02002).
"""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

__all__ = ["log_softmax_parts", "sigmoid_parts"]


# ----------------------------------------------------------------------------------------------
# input conversion


def as_float64(value: npt.ArrayLike, name: str) -> np.ndarray:
    """``value`` as a float64 array; TypeError naming ``name`` for anything but real numbers."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        if array.dtype.kind == "O":
            try:
                return np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                pass
        raise TypeError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
    return array.astype(np.float64)


def finite_logits(logits: npt.ArrayLike, name: str = "logits") -> np.ndarray:
    x = as_float64(logits, name)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    return x


def unit_interval(value: npt.ArrayLike, name: str) -> np.ndarray:
    array = as_float64(value, name)
    if not np.all((array >= 0.0) & (array <= 1.0)):  # NaN fails both comparisons
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN)")
    return array


def element_weights(value, shape: tuple, name: str) -> np.ndarray | None:
    """``weight`` / ``pos_weight``: None, or finite reals >= 0 broadcast to ``shape`` (the logits')."""
    if value is None:
        return None
    array = as_float64(value, name)
    if not np.all(np.isfinite(array) & (array >= 0.0)):
        raise ValueError(f"{name} must be finite and >= 0")
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        message = f"{name} of shape {array.shape} does not broadcast to the logits' shape {shape}"
        raise ValueError(message) from None


def binary_targets(targets: npt.ArrayLike, shape: tuple, ignore_index, logits_name: str = "logits"):
    """(y with ignored entries set to 0, keep mask or None) for the sigmoid family.

    ``ignore_index`` is None or a real number outside [0, 1]; every other target must lie in [0, 1].
    """
    raw = as_float64(targets, "targets")
    if raw.shape != tuple(shape):
        raise ValueError(f"targets must have the shape of {logits_name}: {raw.shape} != {tuple(shape)}")
    if ignore_index is None:
        return unit_interval(raw, "targets"), None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real):
        raise TypeError(f"ignore_index must be a real number or None, got {type(ignore_index).__name__}")
    value = float(ignore_index)
    if not np.isfinite(value) or 0.0 <= value <= 1.0:
        raise ValueError(f"ignore_index must be a finite number outside [0, 1] (e.g. -1), got {ignore_index}")
    keep = raw != value
    y = np.where(keep, raw, 0.0)
    unit_interval(y, "targets")
    return y, keep


def reduce(loss: np.ndarray, reduction: str, count: int | None = None):
    """Apply a reduction; ``count`` is the mean's denominator (default: every element)."""
    loss = np.asarray(loss, dtype=np.float64)
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    count = loss.size if count is None else count
    return total / count if count else np.float64(0.0)


# ----------------------------------------------------------------------------------------------
# stable elementwise pieces


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) without overflow; log1p keeps full relative accuracy when e^z is tiny."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """sigma(z) to a few ulp for every z; never computed as 1 - sigma(-z)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def binary_alpha_t(alpha: float | None, y: np.ndarray):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def sigmoid_parts(
    x: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The pieces of the sigmoid focal loss, each to a few ulp, in log space.

    .. math::

        p = \sigma(x),\quad 1 - p = \sigma(-x),\quad
        \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x),\quad
        1 - p_t = y\,(1-p) + (1-y)\,p.

    -log p = softplus(-x) and -log(1-p) = softplus(x), so CE needs no log of a sigmoid, and 1 - p_t is a
    sum of non-negative terms: no cancellation, even for soft labels (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002, eq. 2 and 5).

    Args:
        x: logits, any shape (finite; not checked here).
        y: targets in [0, 1], broadcastable with ``x`` (not checked here).

    Returns:
        ``(p, 1 - p, CE, 1 - p_t)``, float64 arrays of the broadcast shape.

    Example:
        >>> p, q, ce, m = sigmoid_parts(0.0, 1.0)
        >>> print(float(q), round(float(ce), 6))
        0.5 0.693147
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p, q = sigmoid(x), sigmoid(-x)
    ce = y * softplus(-x) + (1.0 - y) * softplus(x)
    m = y * q + (1.0 - y) * p
    return p, q, ce, m


def log_softmax_parts(x: npt.ArrayLike, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    r"""``(log p, 1 - p)`` of the softmax along ``axis``, accurate also for the dominant class as p -> 1.

    With k the argmax and :math:`s = \sum_{c \ne k} e^{x_c - x_k}`: :math:`\log p_k = -\mathrm{log1p}(s)` and
    :math:`1 - p_k = s / (1 + s)`. ``x_k - logsumexp(x)`` would round to 0 long before the true log p_k
    underflows; log1p keeps it. The other classes have p_c <= 1/2, so 1 - p_c = -expm1(log p_c) is accurate.
    Where the logits of a row span more than the float64 range, log p_c is -inf (its rounded value).

    Args:
        x: finite logits with a class axis ``axis``.
        axis: the class axis.

    Returns:
        ``(log p, 1 - p)``, float64 arrays of the shape of ``x``.

    Example:
        >>> log_p, u = log_softmax_parts([0.0, 0.0])
        >>> print(u.tolist())
        [0.5, 0.5]
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    k = np.argmax(x, axis=-1)[..., None]
    is_max = np.arange(x.shape[-1]) == k
    with np.errstate(over="ignore", invalid="ignore"):
        # Overflows to -inf only when the spread of the logits exceeds the float64 range; then the true
        # log p_c is below -1.8e308 and -inf is its rounded value (p_c = 0).
        shifted = x - np.take_along_axis(x, k, axis=-1)
    s = np.sum(np.where(is_max, 0.0, np.exp(shifted)), axis=-1, keepdims=True)
    log1p_s = np.log1p(s)
    log_p = np.where(is_max, -log1p_s, shifted - log1p_s)
    one_minus_p = np.where(is_max, s / (1.0 + s), -np.expm1(log_p))
    return np.moveaxis(log_p, -1, axis), np.moveaxis(one_minus_p, -1, axis)
