r"""Gradients of the probability-input losses with respect to the probabilities.

What autograd gives a user of ``binary_focal_loss`` / ``categorical_focal_loss`` in torch or Keras (the
probabilities as independent inputs, not renormalised). Written without 0^(gamma-1) as p_t -> 1 and
without an intermediate overflow at subnormal p: finite wherever the true value is finite. Math: Lin et al.,
"Focal Loss for Dense Object Detection" (https://arxiv.org/abs/1708.02002).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._checks import check_axis, check_binary_alpha, check_class_alpha, check_gamma, check_ignore_index
from ._parts import binary_alpha_t, binary_targets, element_weights, unit_interval
from ._softmax import ClassAlpha, class_targets

__all__ = ["binary_focal_loss_grad", "categorical_focal_loss_grad"]


def binary_focal_loss_grad(
    probs: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    weight: npt.ArrayLike | None = None,
    pos_weight: npt.ArrayLike | None = None,
    ignore_index: float | None = None,
) -> np.ndarray:
    r"""Elementwise d FL_i / d p_i of :func:`focal_ref.binary_focal_loss` (reduction ``"none"``).

    With m = 1 - p_t = y(1-p) + (1-y)p, dm/dp = 1 - 2y, CE = -[w_+ y log p + (1-y) log(1-p)]:

    .. math::

        \frac{d\,\mathrm{FL}}{dp} = w\,\alpha_t\,m^{\gamma}\Bigl[\gamma (1-2y)\,\frac{\mathrm{CE}}{m}
        - \frac{w_+ y}{p} + \frac{1-y}{1-p}\Bigr].

    CE/m is bounded where m -> 0 (its limit there is w_+ for y = 1, 1 for y = 0), so no m^(gamma-1) appears;
    the 1/p and 1/(1-p) terms are divided last, so a subnormal p overflows only where the true value does.
    A zero probability on a weighted positive gives -inf (the loss is +inf there).

    Args:
        probs, targets, alpha, gamma, weight, pos_weight, ignore_index: as in
            :func:`focal_ref.binary_focal_loss`.

    Returns:
        float64 array of the shape of ``probs`` (0 where ignored or weighted by 0).

    Raises:
        ValueError, TypeError: as :func:`focal_ref.binary_focal_loss`.

    Example:
        >>> print(float(binary_focal_loss_grad(0.5, 1.0, alpha=None, gamma=0.0)))  # -1/p
        -2.0
    """
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
    y0 = 1.0 - y
    q = 1.0 - p
    m = y * q + y0 * p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_p = np.where(y1 * scale > 0, np.log(p), 0.0)
        log_q = np.where(y0 * scale > 0, np.log1p(-p), 0.0)
        ce = -(y1 * log_p + y0 * log_q)
        ce_over_m = np.where(m > 0, ce / np.where(m > 0, m, 1.0), y1 + y0)
        front = scale * m**gamma
        focal = front * gamma * (1.0 - 2.0 * y) * ce_over_m
        positive = np.where(y1 * front > 0, -(y1 * front) / p, 0.0)
        negative = np.where(y0 * front > 0, (y0 * front) / q, 0.0)
        grad = focal + positive + negative
        # at p = 0 (p = 1) the -log p (-log(1-p)) term dominates: -inf (+inf), also where m**gamma underflows
        grad = np.where((p == 0) & (y1 * scale > 0), -np.inf, grad)
        grad = np.where((q == 0) & (y0 * scale > 0), np.inf, grad)
    return np.asarray(grad, dtype=np.float64) + 0.0


def categorical_focal_loss_grad(
    probs: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    axis: int = -1,
    ignore_index: int | None = None,
) -> np.ndarray:
    r"""d FL_n / d p_{n,c} of :func:`focal_ref.categorical_focal_loss` (the probabilities independent inputs).

    With w_c = y_c alpha_c and u_c = 1 - p_c:

    .. math:: \frac{\partial\,\mathrm{FL}}{\partial p_c} = -w_c\,u_c^{\gamma}\Bigl[\frac{1}{p_c}
              + \gamma\,\frac{-\log p_c}{u_c}\Bigr],

    where -log(p)/u is 1 at u = 0 (no u^(gamma-1)), and 1/p_c is divided last (a subnormal p_c overflows only
    where the true value does). A zero probability on a weighted class gives -inf.

    Args:
        probs, targets, alpha, gamma, axis, ignore_index: as in :func:`focal_ref.categorical_focal_loss`.

    Returns:
        float64 array of the shape of ``probs``.

    Raises:
        ValueError, TypeError: as :func:`focal_ref.categorical_focal_loss`.

    Example:
        >>> print(categorical_focal_loss_grad([0.5, 0.5], 0, gamma=0.0).tolist())  # -1/p on the target
        [-2.0, 0.0]
    """
    p = unit_interval(probs, "probs")
    axis = check_axis(axis, p.ndim)
    gamma = check_gamma(gamma)
    ignore_index = check_ignore_index(ignore_index)
    w, _ = class_targets(targets, p.shape, axis, ignore_index, "probs")
    weights = check_class_alpha(alpha, p.shape[axis])
    if weights is not None:
        w = w * np.asarray(weights)
    p = np.moveaxis(p, axis, -1)
    u = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        front = w * u**gamma
        neg_log_p = -np.log(np.where(w > 0, p, 1.0))
        ratio = np.where(u > 0, neg_log_p / np.where(u > 0, u, 1.0), 1.0)
        grad = np.where(front > 0, -front / p - front * gamma * ratio, 0.0)
        grad = np.where((w > 0) & (p == 0), -np.inf, grad)
    return np.moveaxis(np.asarray(grad, dtype=np.float64), -1, axis) + 0.0
