"""The float64 NumPy reference, sigmoid family: the ground truth every other implementation is tested against.

Conventions (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, §3,
https://arxiv.org/abs/1708.02002):

* ``alpha`` weights the **positive** class: alpha_t = alpha*y + (1-alpha)*(1-y). ``alpha=None`` means
  alpha_t = 1.
* Sigmoid losses are elementwise; softmax losses (:mod:`focal_ref._softmax`) give one value per sample.
* ``reduction``: ``"none"``, ``"mean"`` (unweighted, over all non-ignored elements; 0.0 when nothing is
  counted) or ``"sum"``.
* Every input is converted to float64. Nothing is clipped or clamped; bad input raises ``ValueError``
  (``TypeError`` for a wrong type) naming the argument.

Accuracy: a few ulp against a 60-digit evaluation for any finite logit in [-745, 745], including losses
that are tiny because p_t -> 1 (results below the smallest normal float64 are subnormal and carry only
their absolute accuracy). Second derivatives are in :mod:`focal_ref._hessian`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Literal

import numpy as np
import numpy.typing as npt

from ._checks import check_beta, check_binary_alpha, check_gamma, check_reduction, check_same_shape
from ._parts import (
    binary_alpha_t,
    binary_targets,
    element_weights,
    finite_logits,
    log_softmax_parts,
    reduce,
    sigmoid,
    sigmoid_parts,
    softplus,
    unit_interval,
)
from ._softmax import categorical_focal_loss, softmax_focal_loss, softmax_focal_loss_grad

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

Reduction = Literal["none", "mean", "sum"]

# private aliases kept for older callers (focal_ref.testing's fallback)
_sigmoid_parts = sigmoid_parts
_log_softmax_parts = log_softmax_parts


def sigmoid_terms(logits, targets, alpha, gamma, weight, pos_weight, ignore_index) -> SimpleNamespace:
    """Checked inputs and the pieces every sigmoid-family function needs (loss, gradient, second derivative).

    With Y1 = pw*y and Y0 = 1-y the weights of -log p and -log(1-p): CE = Y1 softplus(-x) + Y0 softplus(x),
    dCE/dx = Y0 p - Y1 q (no cancellation near p = 1), d2CE/dx2 = (Y0 + Y1) p q; m = 1 - p_t does not
    involve pw. ``scale`` = alpha_t * weight, 0 where ignored.
    """
    x = finite_logits(logits)
    y, keep = binary_targets(targets, x.shape, ignore_index)
    alpha, gamma = check_binary_alpha(alpha), check_gamma(gamma)
    w = element_weights(weight, x.shape, "weight")
    pw = element_weights(pos_weight, x.shape, "pos_weight")
    p, q, _, m = sigmoid_parts(x, y)
    y1 = y if pw is None else pw * y
    y0 = 1.0 - y
    ce = y1 * softplus(-x) + y0 * softplus(x)
    scale = np.broadcast_to(np.asarray(binary_alpha_t(alpha, y), dtype=np.float64), x.shape)
    if w is not None:
        scale = scale * w
    if keep is not None:
        scale = np.where(keep, scale, 0.0)
    # r = pq/m in [0, 1] (pq <= min(p, q) <= m). m = 0 only for a hard label with p_t rounding to 1; there
    # m**gamma (or gamma = 0) kills every term that r enters.
    r = np.where(m > 0, p * q / np.where(m > 0, m, 1.0), 0.0)
    return SimpleNamespace(
        x=x,
        y=y,
        keep=keep,
        gamma=gamma,
        p=p,
        q=q,
        m=m,
        r=r,
        ce=ce,
        sign=1.0 - 2.0 * y,
        d1=y0 * p - y1 * q,
        d2=(y0 + y1) * p * q,
        scale=scale,
        mgamma=m**gamma,
    )


def _count(keep: np.ndarray | None) -> int | None:
    return None if keep is None else int(keep.sum())


def sigmoid_focal_loss(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    weight: npt.ArrayLike | None = None,
    pos_weight: npt.ArrayLike | None = None,
    ignore_index: float | None = None,
):
    r"""Sigmoid focal loss of logits, elementwise (binary or multi-label).

    .. math::

        p = \sigma(x),\quad p_t = p\,y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y),

        \mathrm{CE} = -[\,w_+\,y\log p + (1-y)\log(1-p)\,],\qquad
        \mathrm{FL}_i = w_i\,\alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE}.

    For hard labels (w_i = w_+ = 1) this is :math:`-\alpha_t(1-p_t)^\gamma\log p_t` (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002, eq. 5); for soft labels it is the torchvision/Keras form (one
    modulating factor for the whole CE). ``pos_weight`` w_+ scales the positive term as
    ``BCEWithLogitsLoss(pos_weight=)`` does.

    Args:
        logits: real array of any shape, finite.
        targets: array of the same shape, values in [0, 1] (soft labels allowed), or ``ignore_index``.
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0. ``gamma=0`` gives exactly the alpha-weighted BCE.
        reduction: ``"none"`` (elementwise), ``"mean"`` (sum / number of non-ignored elements, 0.0 if
            none) or ``"sum"``.
        weight: per-element weights w_i >= 0, finite, broadcastable to the logits' shape; None for 1.
        pos_weight: w_+ >= 0, finite, broadcastable (typically per class, shape (C,)); None for 1.
        ignore_index: a number outside [0, 1] (e.g. -1): elements whose target equals it give 0 and
            leave the mean's count.

    Returns:
        float64 array of the shape of ``logits`` (``"none"``) or a float64 scalar.

    Raises:
        ValueError: non-finite logits, targets outside [0, 1], mismatched shapes, a bad hyperparameter.
        TypeError: non-real inputs or hyperparameters of the wrong type.

    Example:
        >>> print(round(float(sigmoid_focal_loss(0.0, 1.0)), 6))  # 0.25 * 0.5**2 * log 2
        0.043322
    """
    reduction = check_reduction(reduction)
    t = sigmoid_terms(logits, targets, alpha, gamma, weight, pos_weight, ignore_index)
    loss = t.scale * t.mgamma * t.ce + 0.0  # + 0.0: no -0.0
    return reduce(loss, reduction, _count(t.keep))


def sigmoid_focal_loss_grad(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    weight: npt.ArrayLike | None = None,
    pos_weight: npt.ArrayLike | None = None,
    ignore_index: float | None = None,
) -> np.ndarray:
    r"""Elementwise derivative d FL_i / d x_i of :func:`sigmoid_focal_loss` (reduction ``"none"``).

    With q = 1-p, m = 1-p_t = y q + (1-y) p, dm/dx = (1-2y) p q and dCE/dx = (1-y) p - w_+ y q:

    .. math::

        \frac{d\,\mathrm{FL}}{dx} = w\,\alpha_t\, m^{\gamma}\,\Bigl[\gamma (1-2y)\, r\, \mathrm{CE}
        + \frac{d\,\mathrm{CE}}{dx}\Bigr], \qquad r = \frac{p\,q}{m} \in [0, 1].

    Writing the derivative of m^gamma as gamma m^gamma r instead of gamma m^(gamma-1) p q avoids 0^(gamma-1)
    (infinite for gamma < 1) when p_t -> 1: the result is finite for every finite logit and every
    gamma >= 0. For hard labels it is the paper's Appendix B form
    y'(1-p_t)^gamma (gamma p_t log p_t + p_t - 1) with y' = 2y - 1 (https://arxiv.org/abs/1708.02002).

    Args:
        logits, targets, alpha, gamma, weight, pos_weight, ignore_index: as in :func:`sigmoid_focal_loss`.

    Returns:
        float64 array of the shape of ``logits`` (0 where ignored).

    Raises:
        ValueError, TypeError: as :func:`sigmoid_focal_loss`.

    Example:
        >>> print(float(sigmoid_focal_loss_grad(0.0, 1.0, alpha=None, gamma=0.0)))  # p - y
        -0.5
    """
    t = sigmoid_terms(logits, targets, alpha, gamma, weight, pos_weight, ignore_index)
    return np.asarray(t.scale * t.mgamma * (t.gamma * t.sign * t.r * t.ce + t.d1), dtype=np.float64)


def binary_focal_loss(
    probs: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    weight: npt.ArrayLike | None = None,
    pos_weight: npt.ArrayLike | None = None,
    ignore_index: float | None = None,
):
    r"""Focal loss of probabilities p = sigma(x), elementwise: the formula of :func:`sigmoid_focal_loss`.

    .. math:: \mathrm{FL}_i = w_i\,\alpha_t\,(1-p_t)^{\gamma}\,\bigl(-[\,w_+ y\log p + (1-y)\log(1-p)\,]\bigr)

    Takes the math at face value: a probability of 0 on a positive (or 1 on a negative) gives +inf, as
    -log 0 does, also when (1-p_t)^gamma underflows (a tiny soft target). Terms with a zero weight are 0
    (0 * log 0 = 0). Prefer :func:`sigmoid_focal_loss`, which keeps full accuracy when p is near 1
    (https://arxiv.org/abs/1708.02002).

    Args:
        probs: probabilities in [0, 1], any shape.
        targets, alpha, gamma, reduction, weight, pos_weight, ignore_index: as in :func:`sigmoid_focal_loss`.

    Returns:
        float64 array of the shape of ``probs`` (``"none"``) or a float64 scalar.

    Raises:
        ValueError: probs or targets outside [0, 1], mismatched shapes, a bad hyperparameter.
        TypeError: non-real inputs or hyperparameters of the wrong type.

    Example:
        >>> print(round(float(binary_focal_loss(0.9, 1.0, alpha=None, gamma=2.0)), 8))  # 0.1**2 * -log 0.9
        0.00105361
    """
    reduction = check_reduction(reduction)
    p = unit_interval(probs, "probs")
    y, keep = binary_targets(targets, p.shape, ignore_index, "probs")
    alpha, gamma = check_binary_alpha(alpha), check_gamma(gamma)
    w = element_weights(weight, p.shape, "weight")
    pw = element_weights(pos_weight, p.shape, "pos_weight")
    scale = np.broadcast_to(np.asarray(binary_alpha_t(alpha, y), dtype=np.float64), p.shape)
    if w is not None:
        scale = scale * w
    if keep is not None:
        scale = np.where(keep, scale, 0.0)
    y1 = y if pw is None else pw * y
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # xlogy-style: a zero weight makes the term 0 even where the log is -inf; weighting afterwards
        # would give 0 * inf = NaN. log1p(-p) is exact for small p.
        log_p = np.where(y1 * scale > 0, np.log(p), 0.0)
        log_q = np.where((1.0 - y) * scale > 0, np.log1p(-p), 0.0)
        ce = -(y1 * log_p + (1.0 - y) * log_q)
        m = y * (1.0 - p) + (1.0 - y) * p
        # An infinite CE comes with m > 0 (m = y at p = 0, 1 - y at p = 1): +inf even where m**gamma
        # underflows (a tiny soft target), not 0 * inf = NaN.
        loss = np.where(np.isinf(ce), np.inf, scale * m**gamma * ce) + 0.0
    return reduce(loss, reduction, _count(keep))


# ----------------------------------------------------------------------------------------------
# FL* (Appendix A)


def star_terms(logits, targets, alpha, gamma, beta) -> SimpleNamespace:
    """Checked FL* inputs, y' = 2y-1, alpha_t and z = gamma y' x + beta (+-inf where it overflows)."""
    x = finite_logits(logits)
    y = unit_interval(targets, "targets")
    check_same_shape(x.shape, y.shape)
    alpha = check_binary_alpha(alpha)
    gamma = check_gamma(gamma, positive=True)
    beta = check_beta(beta)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("targets must be hard labels (0 or 1) for FL*: it is defined for y in {-1, +1}")
    sign = 2.0 * y - 1.0
    with np.errstate(over="ignore"):
        z = gamma * sign * x + beta
    a = np.broadcast_to(np.asarray(binary_alpha_t(alpha, y), dtype=np.float64), x.shape)
    return SimpleNamespace(x=x, y=y, sign=sign, z=z, a=a, gamma=gamma, beta=beta)


def sigmoid_focal_loss_star(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    gamma: float = 2.0,
    beta: float = 1.0,
    alpha: float | None = 0.25,
    reduction: Reduction = "none",
):
    r"""FL*, the paper's alternative focal loss (Lin et al. 2017, Appendix A), elementwise.

    With y' = 2y - 1 in {-1, +1} and x_t = y' x:

    .. math:: p_t^* = \sigma(\gamma x_t + \beta),\qquad \mathrm{FL}^* = -\alpha_t \log(p_t^*) / \gamma
              = \alpha_t\,\mathrm{softplus}(-(\gamma x_t + \beta)) / \gamma.

    Evaluated without an overflow or an underflow that the value itself does not have: where z = gamma x_t
    + beta overflows (x = -1e308), FL* = alpha_t (-x_t - beta/gamma); where softplus(-z) ~ e^-z is tiny,
    FL* = exp(log alpha_t - z - log gamma), so dividing by a small gamma does not magnify a subnormal
    (https://arxiv.org/abs/1708.02002).

    Args:
        logits: real array of any shape, finite.
        targets: hard labels (0 or 1) of the same shape.
        gamma: > 0.
        beta: any finite real (the paper's Table 3 uses (gamma, beta) = (2, 1) and (4, 0)).
        alpha: weight of the positives as in the paper's runs (.25); ``None`` for no weighting.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        float64 array of the shape of ``logits`` (``"none"``) or a float64 scalar.

    Raises:
        ValueError: soft targets, gamma <= 0, non-finite logits or beta, mismatched shapes.
        TypeError: wrong types.

    Example:
        >>> print(round(float(sigmoid_focal_loss_star(0.0, 1, gamma=1.0, beta=0.0, alpha=None)), 6))
        0.693147
    """
    reduction = check_reduction(reduction)
    t = star_terms(logits, targets, alpha, gamma, beta)
    z, a, g = t.z, t.a, t.gamma
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        plain = a * softplus(-z) / g
        # softplus(-z) = e^-z (1 - e^-z/2 + ...) = e^-z to eps for z > 40
        tail = np.exp(np.log(a) - z - np.log(g))
        overflow = a * (-t.sign * t.x - t.beta / g)  # z = -inf: softplus(-z) = -z exactly in float64
        loss = np.where(np.isneginf(z), overflow, np.where(z > 40.0, tail, plain))
    loss = np.where(a > 0, loss, 0.0) + 0.0
    return reduce(loss, reduction)


def sigmoid_focal_loss_star_grad(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    gamma: float = 2.0,
    beta: float = 1.0,
    alpha: float | None = 0.25,
) -> np.ndarray:
    r"""Elementwise d FL*_i / d x_i = alpha_t y' (p_t* - 1) = -alpha_t y' sigma(-(gamma x_t + beta)).

    The paper's Appendix B (https://arxiv.org/abs/1708.02002).

    Args:
        logits, targets, gamma, beta, alpha: as in :func:`sigmoid_focal_loss_star`.

    Returns:
        float64 array of the shape of ``logits``.

    Raises:
        ValueError, TypeError: as :func:`sigmoid_focal_loss_star`.

    Example:
        >>> print(float(sigmoid_focal_loss_star_grad(0.0, 1, gamma=1.0, beta=0.0, alpha=None)))
        -0.5
    """
    t = star_terms(logits, targets, alpha, gamma, beta)
    return np.asarray(-t.a * t.sign * sigmoid(-t.z), dtype=np.float64)
