"""The tuning pages' numbers: average precision, the prior bias, the loss at initialization, Fig. 4's curve.

NumPy only (``import focal_ref.experiments.metrics`` needs no torch): the analysis of a run can be done
where the training is not. The focal loss itself is the reference's (:func:`focal_ref.sigmoid_focal_loss`),
not a copy of its softplus and sigmoid. Lin et al. 2017, https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

import focal_ref

__all__ = ["average_precision", "prior_bias", "expected_initial_loss", "normalized_loss_cdf"]


def prior_bias(prior: float | None) -> float:
    r"""The last-layer bias making every initial prediction equal ``prior``: :math:`b = -\log((1-\pi)/\pi)`.

    Lin et al. 2017, §3.3: with :math:`\pi = 0.01`, :math:`b \approx -4.595`. ``None`` gives 0 (p = 0.5).

    Args:
        prior: pi in (0, 1), or None.

    Returns:
        The bias b.

    Raises:
        ValueError: for a prior outside (0, 1).

    Example:
        >>> round(prior_bias(0.01), 3)
        -4.595
    """
    if prior is None:
        return 0.0
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must lie in (0, 1) or be None, got {prior!r}")
    return -math.log((1.0 - prior) / prior)


def average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Average precision of ``scores`` against binary ``labels`` (any equal sizes), from its definition.

    Sort the scores in decreasing order and walk down the list; at each distinct score value k take
    every item scoring at least that value as "detected", giving recall :math:`R_k` (true positives / all
    positives) and precision :math:`P_k` (true positives / detected). Then

    .. math:: \mathrm{AP} = \sum_k (R_k - R_{k-1})\, P_k,\qquad R_0 = 0,

    the area under the step-wise precision-recall curve, with no interpolation.

    **Ties**: items with equal scores form one threshold -- they enter the detected set together -- so
    the result does not depend on the order of the input. (Sorting tied items positives-first would
    overstate AP; negatives-first would understate it.) Use logits, not sigmoid probabilities, as
    scores: float32 probabilities round to exactly 0 or 1 for large logits and would create ties.

    Args:
        scores: real scores, higher meaning "more likely positive" (logits are best).
        labels: 0/1 or bool labels, as many as scores.

    Returns:
        AP, a float in (0, 1]. It equals ``sklearn.metrics.average_precision_score`` (tested).

    Raises:
        ValueError: if the sizes differ, a score is NaN, a label is not 0/1, or there is no positive (AP
            is undefined then).

    Example:
        >>> average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0])  # (1/2) * 1 + (1/2) * 2/3
        0.8333333333333333
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.size != y.size:
        raise ValueError(f"scores and labels must have the same size, got {s.size} and {y.size}")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("labels hold no positive; average precision is undefined")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # last index of each run of equal scores: the thresholds
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = tp[ends]
    detected = ends + 1
    precision = tp / detected
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def expected_initial_loss(
    positive_rate: float, prior: float | None, *, alpha: float | None, gamma: float
) -> float:
    r"""The loss at initialization (every prediction p0 = sigmoid(prior_bias(prior))), divided by num_pos.

    With a fraction r of positive cells, the sum over a batch divided by the number of positives is

    .. math:: L_0 = \mathrm{FL}(b, 1) + \frac{1-r}{r}\,\mathrm{FL}(b, 0)
        = \alpha (1-p_0)^\gamma (-\log p_0) + \frac{1-r}{r}\,(1-\alpha)\, p_0^\gamma\,(-\log(1-p_0)),

    one positive's loss plus the negatives' share per positive, FL the reference's
    :func:`focal_ref.sigmoid_focal_loss` at the bias b. This is the expectation of the first training
    loss when the logits sit exactly at the bias (sigma-0.01 head weights make them nearly so) and the
    batch has the data's positive rate.

    Args:
        positive_rate: r, in (0, 1).
        prior: the prior pi of the bias (None: bias 0).
        alpha: the loss's alpha (None: no weighting).
        gamma: the loss's gamma.

    Returns:
        L_0.

    Raises:
        ValueError: for a positive rate outside (0, 1) or a bad prior, alpha or gamma.

    Example:
        >>> round(expected_initial_loss(0.01, 0.01, alpha=0.25, gamma=2.0), 4)
        1.1285
    """
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"positive_rate must lie in (0, 1), got {positive_rate!r}")
    b = prior_bias(prior)
    pos, neg = focal_ref.sigmoid_focal_loss([b, b], [1.0, 0.0], alpha=alpha, gamma=gamma)
    return float(pos + (1.0 - positive_rate) / positive_rate * neg)


def normalized_loss_cdf(loss: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Lin et al. 2017, Fig. 4: the cumulative share of the total loss against the fraction of samples.

    The losses are normalized to sum to one and sorted from lowest to highest.

    Args:
        loss: per-sample losses: finite, non-negative, with a positive sum.

    Returns:
        ``(fraction of samples, cumulative normalized loss)``, both starting at 0 and ending at 1.

    Raises:
        ValueError: for an empty array, a non-finite or negative loss, or a zero sum.

    Example:
        >>> frac, cum = normalized_loss_cdf([1.0, 3.0])
        >>> cum.tolist()
        [0.0, 0.25, 1.0]
    """
    loss = np.sort(np.asarray(loss, dtype=np.float64).ravel())
    if loss.size == 0 or not np.all(np.isfinite(loss)) or loss.min() < 0 or loss.sum() <= 0:
        raise ValueError("loss must be a non-empty array of finite, non-negative values with a positive sum")
    cum = np.r_[0.0, np.cumsum(loss)] / loss.sum()
    frac = np.arange(loss.size + 1) / loss.size
    return frac, cum
