"""The case battery: the inputs of each region, and the reference values and error scales they are held to.

Sigmoid cases are ``(x, y, alpha, gamma)`` with 1-D float64 ``x`` and ``y``; softmax cases are
``(x, t, alpha, gamma)`` with ``(N, C)`` logits and ``(N,)`` class indices or ``(N, C)`` probabilities.
The battery is deterministic for a given seed. Hard regions on purpose:

* saturated logits (|x| up to 745) with easy and hard examples;
* soft labels, including targets within 1e-15 ... 1e-3 of 0, 1 or one-hot next to logits that make the
  dominant class nearly certain (where ``sum - w_j`` cancels; see :func:`softmax_grad_scale`);
* gamma < 1 where 1 - p_t is tiny or 0.

The reference's values are its public functions: the losses, their gradients, and the second derivatives
:func:`focal_ref.sigmoid_focal_loss_hess` and :func:`focal_ref.softmax_focal_loss_hessian`; the error scales
use :func:`focal_ref.sigmoid_parts` and :func:`focal_ref.log_softmax_parts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import focal_ref

from .regions import GRADIENTS, LOW_GAMMA, MODERATE, SATURATED, SECOND_DERIVATIVES, SOFT

Case = tuple[np.ndarray, np.ndarray, Any, float]
Battery = dict[str, list[Case]]

SATURATED_LOGITS = (6.0, 9.0, 12.0, 17.0, 25.0, 40.0, 88.0, 100.0, 745.0)
LOW_GAMMA_LOGITS = (0.5, 3.0, 9.0, 17.0, 25.0, 40.0, 100.0, 745.0)
LOW_GAMMAS = (0.25, 0.5)
DEFAULT_GAMMAS = (0.0, 1.0, 2.0, 5.0)
#: distances of a soft target from 0, 1 or one-hot in the soft-label region
NEAR_ONE_HOT = (1e-15, 1e-12, 1e-9, 1e-6, 1e-3)
#: the dominant logit of the near-one-hot softmax rows (the other logits are 0 and -1)
NEAR_ONE_HOT_LOGITS = (5.0, 20.0, 27.0, 35.0)


def gamma_choices(gammas: Sequence[float]) -> tuple[Any, list[float]]:
    """``pick(wanted)``: the wanted gammas among ``gammas`` (all of them if none is); and the gamma < 1 ones.

    With the default gammas the gamma < 1 region uses 0.25 and 0.5; with user gammas, those below 1.

    Args:
        gammas: the check's gammas.

    Returns:
        ``(pick, low gammas)``.

    Example:
        >>> pick, low = gamma_choices((0.0, 2.0))
        >>> pick((2.0, 5.0)), pick((7.0,)), low
        ([2.0], [0.0, 2.0], [0.0])
    """

    def pick(wanted: Sequence[float]) -> list[float]:
        return [g for g in gammas if g in wanted] or list(gammas)

    low = list(LOW_GAMMAS) if tuple(gammas) == DEFAULT_GAMMAS else [g for g in gammas if g < 1.0]
    return pick, low


def _battery(moderate, saturated, soft_case, low, alphas, gammas, soft: bool) -> Battery:
    pick, low_gammas = gamma_choices(gammas)
    battery: Battery = {
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
        grads += [(*soft_case, a0, g) for g in pick((0.0, 2.0))]
    battery[GRADIENTS] = grads
    second = [(*moderate, a0, g) for g in pick((0.0, 2.0))]
    second += [(*saturated, a0, g) for g in pick((1.0, 2.0))]
    second += [(*low, a0, g) for g in low_gammas]
    if soft:
        second += [(*soft_case, a0, g) for g in pick((2.0,))]
    battery[SECOND_DERIVATIVES] = second
    return battery


def sigmoid_battery(seed: int, alphas: Sequence[Any], gammas: Sequence[float], soft: bool = True) -> Battery:
    """``{region: [(x, y, alpha, gamma), ...]}`` of float64 arrays; derivative cases reuse the loss cases.

    Args:
        seed: seed of the random part.
        alphas: the alpha values (numbers in [0, 1] or None); derivative regions use the first.
        gammas: the gamma values of the moderate region (see :func:`gamma_choices` for the others).
        soft: whether to build the soft-label cases.

    Returns:
        The cases of every region.

    Example:
        >>> b = sigmoid_battery(0, (0.25,), (2.0,))
        >>> sorted(len(b[r]) for r in b)
        [0, 1, 1, 1, 3, 3]
    """
    rng = np.random.default_rng(seed)
    x_mod = np.clip(rng.normal(0.0, 1.5, 48), -3.0, 3.0)
    y_mod = rng.integers(0, 2, 48).astype(np.float64)
    big = np.array(SATURATED_LOGITS)
    x_sat = np.concatenate([big, -big, big, -big])
    y_sat = np.concatenate([np.ones(2 * big.size), np.zeros(2 * big.size)])
    near = np.array(NEAR_ONE_HOT)
    near_y = np.concatenate([near, 1.0 - near])
    near_x = np.array((-35.0, -20.0, -5.0, 5.0, 20.0, 35.0))
    x_soft = np.concatenate(
        [rng.normal(0.0, 3.0, 40), [-40.0, -17.0, 17.0, 40.0], np.repeat(near_x, near_y.size)]
    )
    y_soft = np.concatenate([rng.uniform(0.02, 0.98, 40), [0.3, 0.7, 0.3, 0.7], np.tile(near_y, near_x.size)])
    low = np.array(LOW_GAMMA_LOGITS)
    x_low = np.concatenate([low, -low, low, -low])
    y_low = np.concatenate([np.ones(2 * low.size), np.zeros(2 * low.size)])
    return _battery((x_mod, y_mod), (x_sat, y_sat), (x_soft, y_soft), (x_low, y_low), alphas, gammas, soft)


def _saturated_rows(bigs: Sequence[float], c: int) -> tuple[np.ndarray, np.ndarray]:
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


def _near_one_hot_rows(c: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits [b, 0, -1, ..., -1]; targets 1 - eps on class 0 (nearly certain) or class 1, eps spread."""
    rows, targets = [], []
    for big in NEAR_ONE_HOT_LOGITS:
        x = np.full(c, -1.0)
        x[0], x[1] = big, 0.0
        for eps in NEAR_ONE_HOT:
            for heavy in (0, 1):
                y = np.full(c, eps / (c - 1))
                y[heavy] = 1.0 - eps
                rows.append(x)
                targets.append(y)
    return np.array(rows), np.array(targets)


def softmax_battery(
    seed: int, num_classes: int, alphas: Sequence[Any], gammas: Sequence[float], soft: bool = True
) -> Battery:
    """``{region: [(x, t, alpha, gamma), ...]}``: ``(N, C)`` logits; ``(N,)`` indices or ``(N, C)`` targets.

    Args:
        seed: seed of the random part.
        num_classes: C.
        alphas: None or tuples of C per-class weights; derivative regions use the first.
        gammas: as in :func:`sigmoid_battery`.
        soft: whether to build the soft-label cases (random rows and near-one-hot rows).

    Returns:
        The cases of every region.

    Example:
        >>> softmax_battery(0, 3, (None,), (0.0,))["soft labels"][0][1].shape
        (70, 3)
    """
    rng = np.random.default_rng(seed)
    c = num_classes
    x_mod = np.clip(rng.normal(0.0, 1.5, (32, c)), -3.0, 3.0)
    t_mod = rng.integers(0, c, 32)
    x_sat, t_sat = _saturated_rows(SATURATED_LOGITS, c)
    x_low, t_low = _saturated_rows(LOW_GAMMA_LOGITS, c)
    x_rand = np.concatenate([rng.normal(0.0, 2.0, (24, c)), _saturated_rows((17.0, 40.0), c)[0]])
    y_rand = rng.dirichlet(np.ones(c), x_rand.shape[0])
    x_near, y_near = _near_one_hot_rows(c)
    x_soft, y_soft = np.concatenate([x_rand, x_near]), np.concatenate([y_rand, y_near])
    return _battery((x_mod, t_mod), (x_sat, t_sat), (x_soft, y_soft), (x_low, t_low), alphas, gammas, soft)


# ----------------------------------------------------------------------------------------------
# error scales


def sigmoid_grad_scale(x: np.ndarray, y: np.ndarray, alpha: float | None, gamma: float) -> np.ndarray:
    """alpha_t m^gamma (gamma |1-2y| r CE + m): the magnitudes of the sigmoid gradient's two terms, summed.

    Args:
        x: float64 logits.
        y: float64 targets in [0, 1].
        alpha: the alpha of the case.
        gamma: the gamma of the case.

    Returns:
        The scale of each element (= |gradient| for hard labels).

    Example:
        >>> float(sigmoid_grad_scale(np.array([0.0]), np.array([1.0]), None, 0.0)[0])
        0.5
    """
    p, q, ce, m = focal_ref.sigmoid_parts(x, y)
    r = np.where(m > 0, p * q / np.where(m > 0, m, 1.0), 0.0)
    alpha_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
    return alpha_t * m**gamma * (gamma * np.abs(1.0 - 2.0 * y) * r * ce + m)


def _class_weights(x: np.ndarray, targets: np.ndarray, alpha: Sequence[float] | None) -> np.ndarray:
    """w_c = y_c alpha_c, shape of ``x`` (one-hot for index targets)."""
    if targets.ndim == x.ndim:
        w = np.asarray(targets, dtype=np.float64)
    else:
        w = (np.arange(x.shape[-1]) == np.asarray(targets)[..., None]).astype(np.float64)
    return w if alpha is None else w * np.asarray(alpha, dtype=np.float64)


def softmax_grad_scale(
    x: np.ndarray, targets: np.ndarray, alpha: Sequence[float] | None, gamma: float
) -> np.ndarray:
    """The scale of a softmax gradient's error, shape of ``x`` (class axis last).

    With w_c = y_c alpha_c, wg_c = w_c u_c^gamma (1 + gamma h_c) (so d loss / d log p_c = -wg_c) and
    dFL/dx_j = p_j sum_{c != j} wg_c - wg_j u_j:

    * class-index targets: sum_c wg_c, the same for every class of the sample. This normwise scale
      bounds every component; the backward pass of log_softmax (the standard cross-entropy kernel) is
      accurate to it, not componentwise.
    * probability targets: p_j sum_{c != j} wg_c + wg_j u_j, the magnitudes of the two terms (componentwise).
      A soft target next to one-hot makes sum_{c != j} wg_c tiny; computing it as sum_c wg_c - wg_j
      loses its digits, and this scale says so.

    Args:
        x: float64 logits ``(N, C)``.
        targets: class indices ``(N,)`` or probabilities ``(N, C)``.
        alpha: None or C per-class weights.
        gamma: the gamma of the case.

    Returns:
        The scale of each component.

    Example:
        >>> float(softmax_grad_scale(np.zeros((1, 2)), np.array([0]), None, 0.0)[0, 1])
        1.0
    """
    log_p, u = focal_ref.log_softmax_parts(x)
    p = np.exp(log_p)
    p_log_p = p * np.where(p > 0, log_p, 0.0)
    h = np.where(u > 0, -p_log_p / np.where(u > 0, u, 1.0), 1.0)
    wg = _class_weights(x, targets, alpha) * u**gamma * (1.0 + gamma * h)
    if targets.ndim != x.ndim:
        return np.broadcast_to(np.sum(wg, axis=-1, keepdims=True), x.shape)
    k = np.argmax(wg, axis=-1)[..., None]
    is_k = np.arange(wg.shape[-1]) == k
    rest = np.sum(np.where(is_k, 0.0, wg), axis=-1, keepdims=True)
    others = np.where(is_k, rest, np.take_along_axis(wg, k, axis=-1) + (rest - wg))
    return p * others + wg * u


# ----------------------------------------------------------------------------------------------
# second derivatives of the reference


def sigmoid_second_derivative(x: np.ndarray, y: np.ndarray, alpha: float | None, gamma: float) -> np.ndarray:
    """d^2 FL_i / dx_i^2 of the reference, elementwise (:func:`focal_ref.sigmoid_focal_loss_hess`).

    Args:
        x: float64 logits.
        y: float64 targets.
        alpha: the alpha of the case.
        gamma: the gamma of the case.

    Returns:
        The second derivative of each element.

    Example:
        >>> float(sigmoid_second_derivative(np.array([0.0]), np.array([1.0]), None, 0.0)[0])
        0.25
    """
    return np.asarray(focal_ref.sigmoid_focal_loss_hess(x, y, alpha=alpha, gamma=gamma), dtype=np.float64)


def softmax_second_derivatives(
    x: np.ndarray, targets: np.ndarray, alpha: Sequence[float] | None, gamma: float
) -> np.ndarray:
    """The per-sample Hessian of the reference, ``(N, C, C)`` (:func:`focal_ref.softmax_focal_loss_hessian`).

    Args:
        x: float64 logits ``(N, C)``.
        targets: class indices ``(N,)`` or probabilities ``(N, C)``.
        alpha: None or C per-class weights.
        gamma: the gamma of the case.

    Returns:
        ``H[n, j, c] = d^2 FL_n / dx_nj dx_nc``.

    Example:
        >>> h = softmax_second_derivatives(np.zeros((1, 2)), np.array([0]), None, 0.0)
        >>> h.tolist()
        [[[0.25, -0.25], [-0.25, 0.25]]]
    """
    hess = focal_ref.softmax_focal_loss_hessian(x, targets, alpha=alpha, gamma=gamma)
    return np.asarray(hess, dtype=np.float64)
