"""High-precision (mpmath) evaluations of every reference function and gradient: the ground truth's ground truth.

Everything here is written from the definitions, literally, and shares no code or rearrangement with
``focal_ref/_reference.py``:

* losses: p = 1/(1+e^-x), p_t = p y + (1-p)(1-y), CE = -[y log p + (1-y) log(1-p)], FL = alpha_t (1-p_t)^gamma CE;
  softmax log p_c = x_c - log(sum_j e^{x_j}); FL* = -alpha_t log(sigma(gamma y' x + beta)) / gamma.
* gradients: the plain chain rule of those literal formulas, including the (1-p_t)^(gamma-1) factor that the
  float64 reference must avoid (here 1-p_t > 0 exactly, so it is harmless). ``diff_*`` gives mpmath's own
  numerical derivative of the loss, used to check these hand derivations.

Precision. The base is ``mp.dps = 60``. The literal formulas cancel catastrophically (1 - p_t for a
saturated logit x is about e^-|x|, and 1 - e^-745 needs 324 digits just to be told apart from 1), so each
evaluation raises the working precision by the digits that cancellation can eat: |x|/ln 10 for logits
(the spread of a softmax row), and an exact 2400-bit arithmetic for probability inputs (1 - p of a double p
needs at most 1075 bits). 60 digits then remain after the cancellation.

All functions take float64 scalars (or 1-d rows for the softmax) and return ``mpmath.mpf`` values.
"""

from __future__ import annotations

import math

import mpmath
from mpmath import mp, mpf

mp.dps = 60
BASE_DPS = 60


def _dps_for(spread: float) -> int:
    """Working digits for literal formulas whose cancellation can cost about spread/ln(10) digits."""
    return BASE_DPS + int(abs(spread) / math.log(10)) + 10


EXACT_PREC = 2400  # bits: sums and products of a few doubles are exact, 1 - p included


def _alpha_t(alpha, y):
    return mpf(1) if alpha is None else mpf(alpha) * y + (1 - mpf(alpha)) * (1 - y)


# ----------------------------------------------------------------------------------------------
# sigmoid / binary


def sigmoid_fl(x: float, y: float, alpha, gamma: float):
    """alpha_t (1-p_t)^gamma CE of one logit, literally."""
    with mp.workdps(_dps_for(x)):
        X, Y, G = mpf(x), mpf(y), mpf(gamma)
        p = 1 / (1 + mp.exp(-X))
        pt = p * Y + (1 - p) * (1 - Y)
        ce = -(Y * mp.log(p) + (1 - Y) * mp.log(1 - p))
        value = _alpha_t(alpha, Y) * (1 - pt) ** G * ce
    return +value  # round to the base precision


def sigmoid_fl_grad(x: float, y: float, alpha, gamma: float):
    """d FL / dx by the chain rule of :func:`sigmoid_fl`; also returns the magnitudes of its two terms.

    FL = a (1-p_t)^g CE, dp/dx = p(1-p), dp_t/dx = (2y-1) dp/dx, dCE/dx = -(y/p - (1-y)/(1-p)) dp/dx:

        dFL/dx = a [ -g (1-p_t)^(g-1) dp_t/dx CE + (1-p_t)^g dCE/dx ].

    Returns (derivative, |first term| + |second term|): for soft labels the two terms have opposite signs
    and the derivative passes through 0, so a float64 result can only be accurate relative to the terms.
    """
    with mp.workdps(_dps_for(x)):
        X, Y, G = mpf(x), mpf(y), mpf(gamma)
        p = 1 / (1 + mp.exp(-X))
        pt = p * Y + (1 - p) * (1 - Y)
        ce = -(Y * mp.log(p) + (1 - Y) * mp.log(1 - p))
        dp = p * (1 - p)
        dpt = (2 * Y - 1) * dp
        dce = -(Y / p - (1 - Y) / (1 - p)) * dp
        a = _alpha_t(alpha, Y)
        first = a * (-G * (1 - pt) ** (G - 1) * dpt * ce) if G != 0 else mpf(0)
        second = a * (1 - pt) ** G * dce
        value, scale = first + second, abs(first) + abs(second)
    return +value, +scale


def diff_sigmoid_fl(x: float, y: float, alpha, gamma: float):
    """mpmath's numerical derivative of :func:`sigmoid_fl` (an independent check of the chain rule above)."""
    with mp.workdps(_dps_for(x)):
        value = mpmath.diff(lambda t: _sigmoid_fl_mp(t, mpf(y), alpha, mpf(gamma)), mpf(x))
    return +value


def _sigmoid_fl_mp(X, Y, alpha, G):
    p = 1 / (1 + mp.exp(-X))
    pt = p * Y + (1 - p) * (1 - Y)
    ce = -(Y * mp.log(p) + (1 - Y) * mp.log(1 - p))
    return _alpha_t(alpha, Y) * (1 - pt) ** G * ce


def binary_fl(prob: float, y: float, alpha, gamma: float):
    """alpha_t (1-p_t)^gamma CE of one probability, literally.

    -log 0 = +inf. The one convention needed is 0 * inf = 0: a term whose weight (alpha_t y for log p,
    alpha_t (1-y) for log(1-p)) is 0 contributes 0 even where its log is -inf (as xlogy does): a sample
    that alpha weights by 0 (alpha = 1 on a negative) is left out, not NaN.
    """
    with mp.workprec(EXACT_PREC):
        P, Y, G = mpf(prob), mpf(y), mpf(gamma)
        a = _alpha_t(alpha, Y)
        pt = P * Y + (1 - P) * (1 - Y)
        value = mpf(0)
        if a * Y > 0:
            value += a * (1 - pt) ** G * Y * (-mp.log(P) if P > 0 else mp.inf)
        if a * (1 - Y) > 0:
            value += a * (1 - pt) ** G * (1 - Y) * (-mp.log(1 - P) if P < 1 else mp.inf)
    return +value


# ----------------------------------------------------------------------------------------------
# FL* (Appendix A)


def fl_star(x: float, y: float, alpha, gamma: float, beta: float):
    """-alpha_t log(sigma(gamma y' x + beta)) / gamma with y' = 2y - 1 (hard y)."""
    z_bound = abs(gamma * x) + abs(beta)
    with mp.workdps(_dps_for(z_bound)):
        X, Y, G, B = mpf(x), mpf(y), mpf(gamma), mpf(beta)
        z = G * (2 * Y - 1) * X + B
        p_star = 1 / (1 + mp.exp(-z))
        value = -_alpha_t(alpha, Y) * mp.log(p_star) / G
    return +value


def diff_fl_star(x: float, y: float, alpha, gamma: float, beta: float):
    """mpmath's numerical derivative of FL* (a check of :func:`fl_star_grad`)."""
    with mp.workdps(_dps_for(abs(gamma * x) + abs(beta))):
        Y, G, B = mpf(y), mpf(gamma), mpf(beta)
        value = mpmath.diff(lambda t: -_alpha_t(alpha, Y) * mp.log(1 / (1 + mp.exp(-(G * (2 * Y - 1) * t + B)))) / G,
                            mpf(x))
    return +value


def fl_star_grad(x: float, y: float, alpha, gamma: float, beta: float):
    """d FL*/dx by the chain rule: d(-log s)/dz = -(1/s) s (1-s), dz/dx = gamma y'."""
    z_bound = abs(gamma * x) + abs(beta)
    with mp.workdps(_dps_for(z_bound)):
        X, Y, G, B = mpf(x), mpf(y), mpf(gamma), mpf(beta)
        sign = 2 * Y - 1
        z = G * sign * X + B
        s = 1 / (1 + mp.exp(-z))
        value = -_alpha_t(alpha, Y) / G * (1 / s) * s * (1 - s) * G * sign
    return +value


# ----------------------------------------------------------------------------------------------
# softmax / categorical


def _class_weights(target, alpha, num_classes):
    """w_c = y_c alpha_c for an int index or a soft target row; alpha None, a number, or a per-class sequence."""
    if isinstance(target, (int,)) or getattr(target, "ndim", 1) == 0:
        y = [mpf(1) if c == int(target) else mpf(0) for c in range(num_classes)]
    else:
        y = [mpf(float(v)) for v in target]
    if alpha is None:
        a = [mpf(1)] * num_classes
    elif isinstance(alpha, (int, float)):
        a = [mpf(alpha)] * num_classes
    else:
        a = [mpf(float(v)) for v in alpha]
    return [yc * ac for yc, ac in zip(y, a)]


def _log_softmax_mp(X):
    lse = mp.log(mp.fsum(mp.exp(v) for v in X))
    return [v - lse for v in X]


def softmax_fl(row, target, alpha, gamma: float):
    """-sum_c w_c (1-p_c)^gamma log p_c for one row of logits, literally (log p = x - log sum exp x)."""
    row = [float(v) for v in row]
    with mp.workdps(_dps_for(max(row) - min(row))):
        X, G = [mpf(v) for v in row], mpf(gamma)
        w = _class_weights(target, alpha, len(X))
        log_p = _log_softmax_mp(X)
        value = -mp.fsum(wc * (1 - mp.exp(lp)) ** G * lp for wc, lp in zip(w, log_p) if wc != 0)
    return +value


def softmax_fl_grad(row, target, alpha, gamma: float):
    """d FL / d x_j for one row by the chain rule; a list of C values.

    With p_c = softmax, dp_c/dx_j = p_c (d_cj - p_j) and d log p_c/dx_j = d_cj - p_j:

        d/dx_j [-(1-p_c)^g log p_c] = g (1-p_c)^(g-1) p_c (d_cj - p_j) log p_c - (1-p_c)^g (d_cj - p_j).
    """
    row = [float(v) for v in row]
    with mp.workdps(_dps_for(max(row) - min(row))):
        X, G = [mpf(v) for v in row], mpf(gamma)
        w = _class_weights(target, alpha, len(X))
        log_p = _log_softmax_mp(X)
        p = [mp.exp(lp) for lp in log_p]
        grad = []
        for j in range(len(X)):
            total = mpf(0)
            for c in range(len(X)):
                if w[c] == 0:
                    continue
                d = (1 if c == j else 0) - p[j]
                u = 1 - p[c]
                first = G * u ** (G - 1) * p[c] * d * log_p[c] if G != 0 else mpf(0)
                total += w[c] * (first - u**G * d)
            grad.append(total)
    return [+g for g in grad]


def diff_softmax_fl(row, target, alpha, gamma: float, j: int):
    """mpmath's numerical partial derivative of :func:`softmax_fl` with respect to x_j."""
    row = [float(v) for v in row]
    with mp.workdps(_dps_for(max(row) - min(row))):
        w = _class_weights(target, alpha, len(row))
        G = mpf(gamma)

        def f(t):
            X = [mpf(v) for v in row]
            X[j] = t
            log_p = _log_softmax_mp(X)
            return -mp.fsum(wc * (1 - mp.exp(lp)) ** G * lp for wc, lp in zip(w, log_p) if wc != 0)

        value = mpmath.diff(f, mpf(row[j]))
    return +value


def categorical_fl(probs, target, alpha, gamma: float):
    """-sum_c w_c (1-p_c)^gamma log p_c of one row of probabilities as given; a positive weight on p_c = 0 is +inf."""
    with mp.workprec(EXACT_PREC):
        P, G = [mpf(float(v)) for v in probs], mpf(gamma)
        w = _class_weights(target, alpha, len(P))
        total = mpf(0)
        for wc, pc in zip(w, P):
            if wc == 0:
                continue
            total += wc * (1 - pc) ** G * (-mp.log(pc) if pc > 0 else mp.inf)
    return +total


# ----------------------------------------------------------------------------------------------
# measuring the float64 reference against the functions above (used by tests/test_reference.py and
# tests/report_accuracy.py)

TINY = 2.2250738585072014e-308  # the smallest normal float64


def relative_error(computed: float, true, scale=None) -> float:
    """|computed - true| / max(scale, TINY), scale defaulting to |true|; two equal infinities give 0.

    Below the smallest normal float64 a result is subnormal: it has fewer than 53 significant bits (a value
    near 1e-320 has about 10), so no computation, however careful, can hold a relative error there. The
    floor TINY turns the test into an absolute one, |computed - true| <= tol * TINY, which is the tolerance
    a value just at the normal boundary already gets: the relative test, continued below the boundary.
    """
    true = mpf(true)
    computed = float(computed)
    if mp.isinf(true) or math.isinf(computed):
        return 0.0 if true == computed else math.inf
    if math.isnan(computed):
        return math.inf
    scale = abs(true) if scale is None else mpf(scale)
    return float(abs(mpf(computed) - true) / max(scale, mpf(TINY)))
