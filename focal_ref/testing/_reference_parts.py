"""The reference's building blocks the checker needs, through the public API when it exists.

``focal_ref.log_softmax_parts`` and ``focal_ref.sigmoid_parts`` are the public names (API decision 4); an
older reference has only the private ones, used as a fallback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import focal_ref
from focal_ref import _reference


def log_softmax_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log p, 1 - p)`` along the last axis, accurate for the dominant class as p -> 1.

    Example:
        >>> log_p, u = log_softmax_parts(np.array([0.0, 0.0]))
        >>> float(u[0])
        0.5
    """
    fn: Any = getattr(focal_ref, "log_softmax_parts", None) or _reference._log_softmax_parts
    log_p, u = fn(np.asarray(x, dtype=np.float64))
    return np.asarray(log_p), np.asarray(u)


def sigmoid_parts(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(p, 1 - p, CE, 1 - p_t)`` of logits ``x`` and targets ``y``, in log space.

    Example:
        >>> [float(v[0]) for v in sigmoid_parts(np.array([0.0]), np.array([1.0]))][:2]
        [0.5, 0.5]
    """
    fn: Any = getattr(focal_ref, "sigmoid_parts", None) or _reference._sigmoid_parts
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p, q, ce, m = fn(x, y)
    return np.asarray(p), np.asarray(q), np.asarray(ce), np.asarray(m)
