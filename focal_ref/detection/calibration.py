"""Calibration of a detector's sigmoid scores: expected calibration error and reliability-diagram data.

NumPy only. Mukhoti et al. 2020, "Calibrating Deep Neural Networks using Focal Loss"
(https://arxiv.org/abs/2002.09437), measure ECE with 15 equal-width bins; here the "predictions" are the
detector's per-anchor, per-class sigmoid scores and the outcome is whether that anchor is labelled
positive for that class (Lin et al. 2017, https://arxiv.org/abs/1708.02002, §4: IoU >= .5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 15
"""Mukhoti et al.'s number of equal-width bins."""


@dataclass(frozen=True)
class Reliability:
    """Reliability-diagram data of scores against binary outcomes, one entry per equal-width bin.

    Attributes:
        edges: (n_bins + 1,) bin edges, ``arange(n_bins + 1) / n_bins``.
        count: (n_bins,) number of scores in each bin.
        confidence: (n_bins,) mean score in each bin (NaN where the bin is empty).
        frequency: (n_bins,) fraction of positive outcomes in each bin (NaN where empty).
    """

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    frequency: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready lists (empty bins' NaN become ``None``)."""

        def plain(a: np.ndarray) -> list:
            return [None if np.isnan(v) else float(v) for v in a.astype(float)]

        return {
            "edges": plain(self.edges),
            "count": [int(c) for c in self.count],
            "confidence": plain(self.confidence),
            "frequency": plain(self.frequency),
        }


def _check(scores: np.ndarray, outcomes: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(outcomes).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and outcomes must have the same size, got {s.size} and {y.size}")
    if s.size == 0:
        raise ValueError("scores must not be empty")
    if not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1:
        raise ValueError("scores must be finite and lie in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("outcomes must be 0 or 1 (or booleans)")
    return s, y.astype(np.float64)


def reliability(scores: np.ndarray, outcomes: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Bin ``scores`` into ``n_bins`` equal-width bins of [0, 1] and measure each bin.

    Bin ``b`` (0-based) holds the scores in ``[b/n, (b+1)/n)``; the last bin also holds 1.0.

    Args:
        scores: predicted probabilities in [0, 1], any shape.
        outcomes: 0/1 (or boolean) outcomes, the same size as ``scores``.
        n_bins: number of equal-width bins.

    Returns:
        A :class:`Reliability`.

    Raises:
        ValueError: on mismatched sizes, empty input, scores outside [0, 1] or non-finite, outcomes other
            than 0/1, or a non-positive ``n_bins``.

    Example:
        >>> r = reliability([0.1, 0.15, 0.9, 0.95], [0, 1, 1, 1], n_bins=2)
        >>> r.count.tolist(), r.frequency.tolist()
        ([2, 2], [0.5, 1.0])
    """
    s, y = _check(scores, outcomes, n_bins)
    edges = np.arange(n_bins + 1) / n_bins
    idx = np.minimum(np.searchsorted(edges, s, side="right") - 1, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, weights=s, minlength=n_bins) / count
        frequency = np.bincount(idx, weights=y, minlength=n_bins) / count
    return Reliability(edges, count, confidence, frequency)


def expected_calibration_error(scores: np.ndarray, outcomes: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of probabilities ``scores`` for 0/1 ``outcomes``, equal-width bins.

    .. math::

        \\mathrm{ECE} = \\sum_{b=1}^{B} \\frac{|S_b|}{N}\\,
            \\Big|\\frac{1}{|S_b|}\\sum_{i \\in S_b} y_i - \\frac{1}{|S_b|}\\sum_{i \\in S_b} s_i\\Big|,
        \\qquad S_b = \\{i : s_i \\in [\\tfrac{b-1}{B}, \\tfrac{b}{B})\\}

    (the last bin closed at 1), empty bins contributing 0: the count-weighted mean gap between each bin's
    positive frequency and its mean score. For the detector, ``s_i`` is the sigmoid score of one
    (anchor, class) pair on a test scene, over every anchor that is not ignored (IoU band) and every class,
    and ``y_i = 1`` when that anchor is labelled positive for that class (IoU >= .5 with an object of that
    class, or its object's best anchor), else 0. This is the binary (per-score) form of the ECE of
    Mukhoti et al. 2020 (https://arxiv.org/abs/2002.09437), who bin a classifier's top-class confidence
    into B = 15 bins; sigmoid scores have no top class, so each score is its own prediction.

    Args:
        scores: predicted probabilities in [0, 1], any shape.
        outcomes: 0/1 (or boolean) outcomes, the same size as ``scores``.
        n_bins: B, the number of equal-width bins of [0, 1] (15 by default, as Mukhoti et al.).

    Returns:
        The ECE, a float in [0, 1].

    Raises:
        ValueError: as :func:`reliability`.

    Example:
        >>> round(expected_calibration_error([0.1, 0.15, 0.9, 0.95], [0, 1, 1, 1], n_bins=2), 4)
        0.225
    """
    r = reliability(scores, outcomes, n_bins)
    full = r.count > 0
    gaps = np.abs(r.frequency[full] - r.confidence[full])
    return float(np.sum(r.count[full] * gaps) / np.sum(r.count))
