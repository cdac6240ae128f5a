"""The float64 NumPy reference: the ground truth every other implementation is tested against.

Conventions (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, §3):

* ``alpha`` weights the **positive** class: alpha_t = alpha*y + (1-alpha)*(1-y).
  ``alpha=None`` means alpha_t = 1.
* Sigmoid losses are elementwise; softmax losses give one value per sample.
* ``reduction``: ``"none"``, ``"mean"`` (unweighted, over all elements / all non-ignored samples;
  0.0 when nothing is counted) or ``"sum"``.
* Every input is converted to float64. Nothing is clipped or clamped; bad input raises ``ValueError``
  (``TypeError`` for a wrong type) naming the argument.

Accuracy: a few ulp against a 50-digit evaluation for any finite logit in [-745, 745], including
losses that are tiny because p_t -> 1 (results below the smallest normal float64 are subnormal and
carry only their absolute accuracy).
"""

from __future__ import annotations

import numpy as np

from ._checks import (
    check_axis,
    check_beta,
    check_binary_alpha,
    check_class_alpha,
    check_gamma,
    check_ignore_index,
    check_reduction,
    check_same_shape,
    softmax_target_kind,
)

__all__ = [
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "binary_focal_loss",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
    "categorical_focal_loss",
    "sigmoid_focal_loss_star",
    "sigmoid_focal_loss_star_grad",
]


# ----------------------------------------------------------------------------------------------
# input conversion


def _as_float64(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        if array.dtype.kind == "O":
            try:
                return np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                pass
        raise TypeError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
    return array.astype(np.float64)


def _finite_logits(logits, name: str = "logits") -> np.ndarray:
    x = _as_float64(logits, name)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    return x


def _unit_interval(value, name: str) -> np.ndarray:
    array = _as_float64(value, name)
    if not np.all((array >= 0.0) & (array <= 1.0)):  # NaN fails both comparisons
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN)")
    return array


def _reduce(loss: np.ndarray, reduction: str, count=None):
    """Apply a reduction; ``count`` is the mean's denominator (default: every element)."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    count = loss.size if count is None else count
    return total / count if count else np.float64(0.0)


# ----------------------------------------------------------------------------------------------
# stable elementwise pieces


def _softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) without overflow; log1p keeps full relative accuracy when e^z is tiny."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """sigma(z) to a few ulp for every z; never computed as 1 - sigma(-z)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _binary_alpha_t(alpha, y: np.ndarray):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def _sigmoid_parts(x: np.ndarray, y: np.ndarray):
    """p, q = 1-p, CE and m = 1-p_t for the sigmoid losses, each to a few ulp.

    -log p = softplus(-x) and -log(1-p) = softplus(x), so CE needs no log of a sigmoid, and
    1-p_t = y*q + (1-y)*p is a sum of non-negative terms: no cancellation, even for soft labels.
    """
    p, q = _sigmoid(x), _sigmoid(-x)
    ce = y * _softplus(-x) + (1.0 - y) * _softplus(x)
    m = y * q + (1.0 - y) * p
    return p, q, ce, m


def _check_sigmoid_inputs(logits, targets, alpha, gamma):
    x = _finite_logits(logits)
    y = _unit_interval(targets, "targets")
    check_same_shape(x.shape, y.shape)
    return x, y, check_binary_alpha(alpha), check_gamma(gamma)


# ----------------------------------------------------------------------------------------------
# sigmoid / binary / multi-label


def sigmoid_focal_loss(logits, targets, *, alpha=0.25, gamma=2.0, reduction="none"):
    r"""Sigmoid focal loss of logits, elementwise (binary or multi-label).

    .. math::

        p = \sigma(x),\quad p_t = p\,y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y),

        \mathrm{CE} = -[y\log p + (1-y)\log(1-p)],\qquad
        \mathrm{FL} = \alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE}.

    For hard labels this is :math:`-\alpha_t(1-p_t)^\gamma\log p_t` (Lin et al. 2017, eq. 5); for soft
    labels it is the torchvision/Keras form (one modulating factor for the whole CE).

    Args:
        logits: real array of any shape, finite.
        targets: array of the same shape, values in [0, 1] (soft labels allowed).
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0. ``gamma=0`` gives exactly the alpha-weighted BCE.
        reduction: ``"none"`` (elementwise), ``"mean"`` or ``"sum"``.

    Returns:
        float64 array of the shape of ``logits`` (``"none"``) or a float64 scalar.
    """
    x, y, alpha, gamma = _check_sigmoid_inputs(logits, targets, alpha, gamma)
    reduction = check_reduction(reduction)
    _, _, ce, m = _sigmoid_parts(x, y)
    loss = _binary_alpha_t(alpha, y) * m**gamma * ce
    return _reduce(np.asarray(loss, dtype=np.float64), reduction)


def sigmoid_focal_loss_grad(logits, targets, *, alpha=0.25, gamma=2.0):
    r"""Elementwise derivative d FL_i / d x_i of :func:`sigmoid_focal_loss` (reduction ``"none"``).

    With q = 1-p and m = 1-p_t = y q + (1-y) p, dm/dx = (1-2y) p q and dCE/dx = p - y, so

    .. math::

        \frac{d\,\mathrm{FL}}{dx} = \alpha_t\, m^{\gamma}\,\bigl[\gamma (1-2y)\, r\, \mathrm{CE} + (p - y)\bigr],
        \qquad r = \frac{p\,q}{m} \in [0, 1].

    Writing the derivative of m^gamma as gamma * m^gamma * (pq/m) instead of gamma * m^(gamma-1) * pq avoids
    0^(gamma-1) (infinite for gamma < 1) when p_t -> 1: the result is finite for every finite logit and
    every gamma >= 0. For hard labels it is the paper's Appendix B form
    y'(1-p_t)^gamma (gamma p_t log p_t + p_t - 1) with y' = 2y - 1.
    """
    x, y, alpha, gamma = _check_sigmoid_inputs(logits, targets, alpha, gamma)
    p, q, ce, m = _sigmoid_parts(x, y)
    # m = 0 only for a hard label with p_t rounding to 1; there m**gamma (or gamma = 0) kills the term.
    r = np.where(m > 0, p * q / np.where(m > 0, m, 1.0), 0.0)
    # p - y written as (1-y) p - y q: exact -q for y = 1, no cancellation near p = 1.
    p_minus_y = (1.0 - y) * p - y * q
    grad = _binary_alpha_t(alpha, y) * m**gamma * (gamma * (1.0 - 2.0 * y) * r * ce + p_minus_y)
    return np.asarray(grad, dtype=np.float64)


def binary_focal_loss(probs, targets, *, alpha=0.25, gamma=2.0, reduction="none"):
    r"""Focal loss of probabilities p = sigma(x), elementwise; the same formula as :func:`sigmoid_focal_loss`.

    Takes the math at face value: ``probs`` must lie in [0, 1]; a probability of 0 on a positive
    (or 1 on a negative) gives +inf, as -log 0 does. Terms with a zero target weight are 0
    (0 * log 0 = 0). Prefer :func:`sigmoid_focal_loss`, which keeps full accuracy when p is near 1.
    """
    p = _unit_interval(probs, "probs")
    y = _unit_interval(targets, "targets")
    check_same_shape(p.shape, y.shape, "probs")
    alpha, gamma = check_binary_alpha(alpha), check_gamma(gamma)
    reduction = check_reduction(reduction)
    alpha_t = _binary_alpha_t(alpha, y)
    with np.errstate(divide="ignore"):
        # xlogy-style: a zero weight (y, 1-y or alpha_t) makes the term 0 even where the log is -inf; weighting
        # afterwards would give alpha_t * inf = 0 * inf = NaN (alpha = 1 with p = 1 on a negative).
        # log1p(-p) is exact for small p.
        log_p = np.where(y * alpha_t > 0, np.log(p), 0.0)
        log_q = np.where((1.0 - y) * alpha_t > 0, np.log1p(-p), 0.0)
    ce = -(y * log_p + (1.0 - y) * log_q)
    m = y * (1.0 - p) + (1.0 - y) * p
    loss = alpha_t * m**gamma * ce
    return _reduce(np.asarray(loss, dtype=np.float64), reduction)


def _check_star_inputs(logits, targets, alpha, gamma, beta):
    x, y, alpha, _ = _check_sigmoid_inputs(logits, targets, alpha, gamma)
    gamma = check_gamma(gamma, positive=True)
    beta = check_beta(beta)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("targets must be hard labels (0 or 1) for FL*: it is defined for y in {-1, +1}")
    return x, y, alpha, gamma, beta


def sigmoid_focal_loss_star(logits, targets, *, gamma=2.0, beta=1.0, alpha=0.25, reduction="none"):
    r"""FL*, the paper's alternative focal loss (Lin et al. 2017, Appendix A), elementwise.

    With y' = 2y - 1 in {-1, +1} and x_t = y' x:

    .. math:: p_t^* = \sigma(\gamma x_t + \beta),\qquad \mathrm{FL}^* = -\alpha_t \log(p_t^*) / \gamma
              = \alpha_t\,\mathrm{softplus}(-(\gamma x_t + \beta)) / \gamma.

    ``targets`` must be hard (0 or 1) and ``gamma`` > 0. ``alpha`` weights positives as in the paper's
    Table 3 runs (alpha = .25); ``None`` for no weighting.
    """
    x, y, alpha, gamma, beta = _check_star_inputs(logits, targets, alpha, gamma, beta)
    reduction = check_reduction(reduction)
    z = gamma * (2.0 * y - 1.0) * x + beta
    loss = _binary_alpha_t(alpha, y) * _softplus(-z) / gamma
    return _reduce(np.asarray(loss, dtype=np.float64), reduction)


def sigmoid_focal_loss_star_grad(logits, targets, *, gamma=2.0, beta=1.0, alpha=0.25):
    r"""Elementwise d FL*_i / d x_i: alpha_t * y' (p_t* - 1) = -alpha_t * y' * sigma(-(gamma x_t + beta)) (Appendix B)."""
    x, y, alpha, gamma, beta = _check_star_inputs(logits, targets, alpha, gamma, beta)
    sign = 2.0 * y - 1.0
    grad = -_binary_alpha_t(alpha, y) * sign * _sigmoid(-(gamma * sign * x + beta))
    return np.asarray(grad, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# softmax / multi-class


def _move_class_axis_last(array: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(array, axis, -1)


def _class_targets(targets, logits_shape, axis: int, ignore_index, logits_name: str):
    """Turn softmax targets into class weights y (shape ``logits_shape`` with classes last) and a keep mask.

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
        raise ValueError("ignore_index applies only to integer class-index targets, not to probability targets")
    y = _unit_interval(raw, "targets")
    return _move_class_axis_last(y, axis), None


def _log_softmax_parts(x: np.ndarray):
    """log p and 1 - p along the last axis, accurate also for the dominant class as p -> 1.

    With k the argmax and s = sum_{c != k} exp(x_c - x_k): log p_k = -log1p(s) and 1 - p_k = s/(1+s).
    x_k - logsumexp(x) would round to 0 long before the true log p_k underflows; log1p keeps it.
    The other classes have p_c <= 1/2, so 1 - p_c = -expm1(log p_c) is accurate.
    """
    k = np.argmax(x, axis=-1)[..., None]
    is_max = np.arange(x.shape[-1]) == k
    with np.errstate(over="ignore"):
        # Overflows to -inf only when the spread of the logits exceeds the float64 range; then the true
        # log p_c is below -1.8e308 and -inf is its rounded value (p_c = 0).
        shifted = x - np.take_along_axis(x, k, axis=-1)
    s = np.sum(np.where(is_max, 0.0, np.exp(shifted)), axis=-1, keepdims=True)
    log1p_s = np.log1p(s)
    log_p = np.where(is_max, -log1p_s, shifted - log1p_s)
    one_minus_p = np.where(is_max, s / (1.0 + s), -np.expm1(log_p))
    return log_p, one_minus_p


def _check_softmax_inputs(logits, targets, alpha, gamma, axis, ignore_index):
    x = _finite_logits(logits)
    axis = check_axis(axis, x.ndim)
    gamma = check_gamma(gamma)
    ignore_index = check_ignore_index(ignore_index)
    y, keep = _class_targets(targets, x.shape, axis, ignore_index, "logits")
    weights = check_class_alpha(alpha, x.shape[axis])
    if weights is not None:
        y = y * np.asarray(weights)  # w_c = y_c * alpha_c
    return _move_class_axis_last(x, axis), y, keep, gamma, axis


def softmax_focal_loss(logits, targets, *, alpha=None, gamma=2.0, reduction="none", axis=-1, ignore_index=None):
    r"""Softmax (multi-class) focal loss, one value per sample.

    .. math:: \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^{\gamma}\log p_c,\qquad \log p = \mathrm{log\_softmax}(x)

    For class-index targets this is :math:`-\alpha_t (1-p_t)^\gamma \log p_t`.

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
        ignore_index: with integer targets only: samples with this label give 0 and are left out of the mean.
    """
    reduction = check_reduction(reduction)
    x, w, keep, gamma, _ = _check_softmax_inputs(logits, targets, alpha, gamma, axis, ignore_index)
    log_p, one_minus_p = _log_softmax_parts(x)
    # Only classes with weight w_c > 0 enter: no 0 * (-inf) where log p_c overflows to -inf, and the sum
    # stays exact for one-hot targets.
    with np.errstate(invalid="ignore"):
        terms = np.where(w > 0, w * one_minus_p**gamma * -log_p, 0.0)
    loss = terms.sum(axis=-1)
    count = None if keep is None else int(keep.sum())
    return _reduce(np.asarray(loss, dtype=np.float64), reduction, count)


def softmax_focal_loss_grad(logits, targets, *, alpha=None, gamma=2.0, axis=-1, ignore_index=None):
    r"""d FL_n / d x_{n,j} of :func:`softmax_focal_loss` (reduction ``"none"``); the shape of ``logits``.

    With w_c = y_c alpha_c, u_c = 1 - p_c and g_c = p_c d/dp_c[(1-p_c)^gamma log p_c]
    = u_c^gamma (1 + gamma h_c), h_c = -p_c log p_c / u_c in [0, 1]:

    .. math:: \frac{\partial \mathrm{FL}}{\partial x_j} = p_j \sum_{c \ne j} w_c g_c - w_j g_j u_j.

    h_c replaces gamma * u^(gamma-1) * p log p, whose 0^(gamma-1) is infinite for gamma < 1 as p_c -> 1;
    its limit there is 1. The target-class term is written with u_j, not p_j - 1, to stay exact as p_j -> 1.
    """
    x_last, w, keep, gamma, axis = _check_softmax_inputs(logits, targets, alpha, gamma, axis, ignore_index)
    log_p, u = _log_softmax_parts(x_last)
    p = np.exp(log_p)
    # p log p -> 0 as p -> 0: where p underflows to 0 (log p may then be -inf) the product is 0, not 0 * inf = NaN.
    p_log_p = p * np.where(p > 0, log_p, 0.0)
    h = np.where(u > 0, -p_log_p / np.where(u > 0, u, 1.0), 1.0)
    wg = w * u**gamma * (1.0 + gamma * h)  # >= 0
    # others_j = sum_{c != j} wg_c. Not as sum - wg_j: that cancels when one class holds nearly all the weight
    # (a soft target next to one-hot: 1 - (1 - 1e-12) keeps 4 digits). With k the heaviest class and rest the
    # sum without it, others_k = rest, and others_j = wg_k + (rest - wg_j) >= wg_k for j != k, so the
    # subtraction (error <= eps * rest <= eps * (C-1) * wg_k) costs at most about C ulp of the result.
    # Exact for one-hot targets (rest = 0).
    k = np.argmax(wg, axis=-1)[..., None]
    is_k = np.arange(wg.shape[-1]) == k
    rest = np.sum(np.where(is_k, 0.0, wg), axis=-1, keepdims=True)
    others = np.where(is_k, rest, np.take_along_axis(wg, k, axis=-1) + (rest - wg))
    grad = p * others - wg * u
    return np.moveaxis(np.asarray(grad, dtype=np.float64), -1, axis)


def categorical_focal_loss(probs, targets, *, alpha=None, gamma=2.0, reduction="none", axis=-1, ignore_index=None):
    r"""Softmax focal loss of probabilities: -sum_c y_c alpha_c (1-p_c)^gamma log p_c, one value per sample.

    ``probs`` are used as given (entries in [0, 1], not renormalised); a zero probability on a class with
    positive target weight gives +inf. Targets, ``alpha``, ``reduction``, ``axis`` and ``ignore_index``
    are as in :func:`softmax_focal_loss`.
    """
    reduction = check_reduction(reduction)
    p = _unit_interval(probs, "probs")
    axis = check_axis(axis, p.ndim)
    gamma = check_gamma(gamma)
    ignore_index = check_ignore_index(ignore_index)
    w, keep = _class_targets(targets, p.shape, axis, ignore_index, "probs")
    weights = check_class_alpha(alpha, p.shape[axis])
    if weights is not None:
        w = w * np.asarray(weights)
    p = _move_class_axis_last(p, axis)
    with np.errstate(divide="ignore"):
        # log only where w_c > 0: a zero weight on p_c = 0 would otherwise compute 0 * inf = NaN (then masked,
        # but with a RuntimeWarning on valid input); a positive weight on p_c = 0 gives +inf, as it should.
        log_p = np.log(np.where(w > 0, p, 1.0))
    terms = np.where(w > 0, w * (1.0 - p) ** gamma * -log_p, 0.0)
    loss = terms.sum(axis=-1)
    count = None if keep is None else int(keep.sum())
    return _reduce(np.asarray(loss, dtype=np.float64), reduction, count)
