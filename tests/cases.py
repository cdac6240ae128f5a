"""The shared battery of test cases: random points plus the extremes where implementations break.

Every framework test compares against the NumPy reference on these same cases.
"""

import itertools

import numpy as np

GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
ALPHAS = (None, 0.0, 0.25, 0.5, 1.0)
EXTREME_LOGITS = (-745.0, -100.0, -40.0, -17.0, -1.0, 0.0, 1.0, 17.0, 40.0, 100.0, 745.0)
EDGE_TARGETS = (0.0, 1e-12, 0.3, 0.5, 1.0 - 1e-12, 1.0)


def sigmoid_cases(seed: int = 0, n_random: int = 200):
    """(logits, targets) float64 arrays: every extreme logit with every edge target, plus random points."""
    rng = np.random.default_rng(seed)
    grid = np.array(list(itertools.product(EXTREME_LOGITS, EDGE_TARGETS)))
    logits = np.concatenate([grid[:, 0], rng.normal(0.0, 6.0, n_random)])
    hard = rng.integers(0, 2, n_random).astype(np.float64)
    soft = rng.uniform(0.0, 1.0, n_random)
    targets = np.concatenate([grid[:, 1], np.where(rng.uniform(size=n_random) < 0.5, hard, soft)])
    return logits, targets


def softmax_cases(seed: int = 0, n_random: int = 100, num_classes: int = 5):
    """(logits (N, C), int targets (N,), soft targets (N, C)): random rows plus saturated and tied rows."""
    rng = np.random.default_rng(seed)
    rows = [rng.normal(0.0, 4.0, (n_random, num_classes))]
    for big in (17.0, 40.0, 100.0, 745.0):
        saturated = np.zeros((2, num_classes))
        saturated[0, 0] = big  # the dominant class: p -> 1
        saturated[1, 0] = -big  # one class pushed to p -> 0
        rows.append(saturated)
    rows.append(np.zeros((1, num_classes)))  # a full tie
    logits = np.concatenate(rows)
    n = logits.shape[0]
    index = rng.integers(0, num_classes, n)
    index[n_random:] = 0  # the saturated rows: target on the extreme class
    soft = rng.dirichlet(np.ones(num_classes), n)
    return logits, index, soft
