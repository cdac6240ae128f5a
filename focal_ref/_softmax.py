"""The float64 NumPy reference, softmax family (multi-class): one loss value per sample.

Lin et al., "Focal Loss for Dense Object Detection" (https://arxiv.org/abs/1708.02002), with the
softmax form -sum_c y_c alpha_c (1-p_c)^gamma log p_c (one modulating factor per class term).
Conventions and accuracy as in :mod:`focal_ref._reference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Literal, Union

import numpy as np
import numpy.typing as npt

from ._checks import (
    check_axis,
    check_class_alpha,
    check_gamma,
    check_ignore_index,
    check_reduction,
    softmax_target_kind,
)
from ._parts import finite_logits, log_softmax_parts, reduce, unit_interval

__all__ = ["softmax_focal_loss", "softmax_focal_loss_grad", "categorical_focal_loss"]

Reduction = Literal["none", "mean", "sum"]
ClassAlpha = Union[float, Sequence[float], np.ndarray, None]  # noqa: UP007 (a runtime alias)


def class_targets(targets, logits_shape, axis: int, ignore_index, logits_name: str):
    """Softmax targets as class weights y (``logits_shape`` with classes last) and a keep mask (or None).

    Integer targets are class indices (the shape of the logits without the class axis); anything
    else of the logits' shape is a (soft) probability target.
    """
    raw = np.asarray(targets)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"targets must be integer class indices or real probabilities, got dtype {raw.dtype}")
    kind = softmax_target_kind(logits_shape, raw.shape, axis, logits_name)
    num_classes = logits_shape[axis]
    if kind == "indices":
        if raw.dtype.kind not in "iu":
            raise TypeError(
                f"targets of shape {raw.shape} are class indices and must be integers, got dtype {raw.dtype}"
            )
        keep = np.ones(raw.shape, dtype=bool) if ignore_index is None else raw != ignore_index
        bad = keep & ((raw < 0) | (raw >= num_classes))
        if np.any(bad):
            raise ValueError(
                f"targets must be class indices in [0, {num_classes}) (or ignore_index={ignore_index}), "
                f"got {raw[bad].ravel()[0]}"
            )
        index = np.where(keep, raw, 0)
        y = (index[..., None] == np.arange(num_classes)).astype(np.float64) * keep[..., None]
        return y, keep
    if ignore_index is not None:
        raise ValueError(
            "ignore_index applies only to integer class-index targets, not to probability targets"
        )
    y = unit_interval(raw, "targets")
    return np.moveaxis(y, axis, -1), None


def softmax_terms(logits, targets, alpha, gamma, axis, ignore_index) -> SimpleNamespace:
    """Checked inputs (classes moved last), w_c = y_c alpha_c, log p, u = 1 - p, p and the keep mask.

    Also g_c = u_c^gamma (1 + gamma h_c) with h_c = -p_c log p_c / u_c in [0, 1] (limit 1 as p_c -> 1):
    -g_c is the derivative of -(1-p_c)^gamma log p_c with respect to log p_c.
    """
    x = finite_logits(logits)
    axis = check_axis(axis, x.ndim)
    gamma = check_gamma(gamma)
    ignore_index = check_ignore_index(ignore_index)
    w, keep = class_targets(targets, x.shape, axis, ignore_index, "logits")
    weights = check_class_alpha(alpha, x.shape[axis])
    if weights is not None:
        w = w * np.asarray(weights)
    x = np.moveaxis(x, axis, -1)
    log_p, u = log_softmax_parts(x)
    p = np.exp(log_p)
    # p log p -> 0 as p -> 0: where p underflows to 0 (log p may then be -inf) the product is 0, not NaN.
    p_log_p = p * np.where(p > 0, log_p, 0.0)
    h = np.where(u > 0, -p_log_p / np.where(u > 0, u, 1.0), 1.0)
    wg = w * u**gamma * (1.0 + gamma * h)  # >= 0
    return SimpleNamespace(x=x, w=w, keep=keep, gamma=gamma, axis=axis, log_p=log_p, u=u, p=p, h=h, wg=wg)


def softmax_focal_loss(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    axis: int = -1,
    ignore_index: int | None = None,
):
    r"""Softmax (multi-class) focal loss, one value per sample.

    .. math::

        \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^{\gamma}\log p_c,\qquad \log p = \mathrm{log\_softmax}(x)

    For class-index targets this is :math:`-\alpha_t (1-p_t)^\gamma \log p_t` (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002).

    Args:
        logits: finite real array with a class axis ``axis`` of size C.
        targets: integer class indices (the shape of ``logits`` without ``axis``) or probabilities
            (one-hot or soft; the shape of ``logits``; entries in [0, 1], not renormalised).
        alpha: ``None`` (every class weight 1), a number in [0, 1] (one weight for every class) or a
            sequence of C per-class weights in [0, 1].
        gamma: focusing parameter, real, >= 0. ``gamma=0`` gives exactly the (weighted) cross entropy.
        reduction: ``"none"`` (per sample), ``"mean"`` (over non-ignored samples, unweighted; 0.0 if all
            are ignored) or ``"sum"``.
        axis: the class axis.
        ignore_index: with integer targets only: samples with this label give 0 and leave the mean.

    Returns:
        float64 array of the logits' shape without ``axis`` (``"none"``) or a float64 scalar.

    Raises:
        ValueError: non-finite logits, targets out of range or of the wrong shape, a bad hyperparameter.
        TypeError: non-real inputs, float class indices, hyperparameters of the wrong type.

    Example:
        >>> print(round(float(softmax_focal_loss([0.0, 0.0], 1, gamma=1.0)), 6))  # 0.5 * log 2
        0.346574
    """
    reduction = check_reduction(reduction)
    t = softmax_terms(logits, targets, alpha, gamma, axis, ignore_index)
    # Only classes with weight w_c > 0 enter: no 0 * (-inf) where log p_c overflows to -inf, and the sum
    # stays exact for one-hot targets.
    with np.errstate(invalid="ignore"):
        terms = np.where(t.w > 0, t.w * t.u**t.gamma * -t.log_p, 0.0)
    count = None if t.keep is None else int(t.keep.sum())
    return reduce(terms.sum(axis=-1) + 0.0, reduction, count)


def softmax_focal_loss_grad(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    axis: int = -1,
    ignore_index: int | None = None,
) -> np.ndarray:
    r"""d FL_n / d x_{n,j} of :func:`softmax_focal_loss` (reduction ``"none"``); the shape of ``logits``.

    With w_c = y_c alpha_c, u_c = 1 - p_c and g_c = u_c^gamma (1 + gamma h_c),
    h_c = -p_c log p_c / u_c in [0, 1]:

    .. math:: \frac{\partial \mathrm{FL}}{\partial x_j} = p_j \sum_{c \ne j} w_c g_c - w_j g_j u_j.

    h_c replaces gamma u^(gamma-1) p log p, whose 0^(gamma-1) is infinite for gamma < 1 as p_c -> 1; its
    limit there is 1. The target-class term is written with u_j, not p_j - 1, to stay exact as p_j -> 1
    (https://arxiv.org/abs/1708.02002).

    Args:
        logits, targets, alpha, gamma, axis, ignore_index: as in :func:`softmax_focal_loss`.

    Returns:
        float64 array of the shape of ``logits`` (0 for ignored samples).

    Raises:
        ValueError, TypeError: as :func:`softmax_focal_loss`.

    Example:
        >>> print(softmax_focal_loss_grad([0.0, 0.0], 0, gamma=0.0).tolist())  # p - y
        [-0.5, 0.5]
    """
    t = softmax_terms(logits, targets, alpha, gamma, axis, ignore_index)
    wg = t.wg
    # others_j = sum_{c != j} wg_c. Not as sum - wg_j: that cancels when one class holds nearly all the weight
    # (a soft target next to one-hot: 1 - (1 - 1e-12) keeps 4 digits). With k the heaviest class and rest the
    # sum without it, others_k = rest, and others_j = wg_k + (rest - wg_j) >= wg_k for j != k, so the
    # subtraction (error <= eps * rest <= eps * (C-1) * wg_k) costs at most about C ulp of the result.
    # Exact for one-hot targets (rest = 0).
    k = np.argmax(wg, axis=-1)[..., None]
    is_k = np.arange(wg.shape[-1]) == k
    rest = np.sum(np.where(is_k, 0.0, wg), axis=-1, keepdims=True)
    others = np.where(is_k, rest, np.take_along_axis(wg, k, axis=-1) + (rest - wg))
    grad = t.p * others - wg * t.u
    return np.moveaxis(np.asarray(grad, dtype=np.float64), -1, t.axis)


def categorical_focal_loss(
    probs: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    axis: int = -1,
    ignore_index: int | None = None,
):
    r"""Softmax focal loss of probabilities, one value per sample.

    .. math:: \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^{\gamma}\log p_c

    ``probs`` are used as given (entries in [0, 1], not renormalised); a zero probability on a class with
    positive target weight gives +inf (https://arxiv.org/abs/1708.02002).

    Args:
        probs: probabilities in [0, 1] with a class axis ``axis``.
        targets, alpha, gamma, reduction, axis, ignore_index: as in :func:`softmax_focal_loss`.

    Returns:
        float64 array of the probs' shape without ``axis`` (``"none"``) or a float64 scalar.

    Raises:
        ValueError: probs outside [0, 1], targets out of range or of the wrong shape, a bad hyperparameter.
        TypeError: non-real inputs, float class indices, hyperparameters of the wrong type.

    Example:
        >>> print(round(float(categorical_focal_loss([0.5, 0.5], 0, gamma=1.0)), 6))
        0.346574
    """
    reduction = check_reduction(reduction)
    p = unit_interval(probs, "probs")
    axis = check_axis(axis, p.ndim)
    gamma = check_gamma(gamma)
    ignore_index = check_ignore_index(ignore_index)
    w, keep = class_targets(targets, p.shape, axis, ignore_index, "probs")
    weights = check_class_alpha(alpha, p.shape[axis])
    if weights is not None:
        w = w * np.asarray(weights)
    p = np.moveaxis(p, axis, -1)
    with np.errstate(divide="ignore"):
        # log only where w_c > 0: a zero weight on p_c = 0 would otherwise compute 0 * inf = NaN; a positive
        # weight on p_c = 0 gives +inf, as it should.
        log_p = np.log(np.where(w > 0, p, 1.0))
    terms = np.where(w > 0, w * (1.0 - p) ** gamma * -log_p, 0.0)
    count = None if keep is None else int(keep.sum())
    return reduce(terms.sum(axis=-1) + 0.0, reduction, count)
