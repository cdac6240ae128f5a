"""High-precision (mpmath) evaluations of every reference function and gradient: the ground truth's
ground truth.

Everything here is written from the definitions, literally, and shares no code or rearrangement with
``focal_ref/_reference.py``:

* losses: p = 1/(1+e^-x), p_t = p y + (1-p)(1-y), CE = -[y log p + (1-y) log(1-p)], FL = alpha_t
  (1-p_t)^gamma CE;
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


def sigmoid_fl(x: float, y: float, alpha, gamma: float, pos_weight: float = 1.0):
    """alpha_t (1-p_t)^gamma CE of one logit, literally; CE = -[pw y log p + (1-y) log(1-p)] (issue 13)."""
    with mp.workdps(_dps_for(x)):
        X, Y, G, W = mpf(x), mpf(y), mpf(gamma), mpf(pos_weight)
        p = 1 / (1 + mp.exp(-X))
        pt = p * Y + (1 - p) * (1 - Y)
        ce = -(W * Y * mp.log(p) + (1 - Y) * mp.log(1 - p))
        value = _alpha_t(alpha, Y) * (1 - pt) ** G * ce
    return +value  # round to the base precision


def sigmoid_fl_grad(x: float, y: float, alpha, gamma: float, pos_weight: float = 1.0):
    """d FL / dx by the chain rule of :func:`sigmoid_fl`; also returns the magnitudes of its two terms.

    FL = a (1-p_t)^g CE, dp/dx = p(1-p), dp_t/dx = (2y-1) dp/dx, dCE/dx = -(y/p - (1-y)/(1-p)) dp/dx:

        dFL/dx = a [ -g (1-p_t)^(g-1) dp_t/dx CE + (1-p_t)^g dCE/dx ].

    Returns (derivative, |first term| + |second term|): for soft labels the two terms have opposite signs
    and the derivative passes through 0, so a float64 result can only be accurate relative to the terms.
    """
    with mp.workdps(_dps_for(x)):
        X, Y, G, W = mpf(x), mpf(y), mpf(gamma), mpf(pos_weight)
        p = 1 / (1 + mp.exp(-X))
        pt = p * Y + (1 - p) * (1 - Y)
        ce = -(W * Y * mp.log(p) + (1 - Y) * mp.log(1 - p))
        dp = p * (1 - p)
        dpt = (2 * Y - 1) * dp
        dce = -(W * Y / p - (1 - Y) / (1 - p)) * dp
        a = _alpha_t(alpha, Y)
        first = a * (-G * (1 - pt) ** (G - 1) * dpt * ce) if G != 0 else mpf(0)
        second = a * (1 - pt) ** G * dce
        value, scale = first + second, abs(first) + abs(second)
    return +value, +scale


def diff_sigmoid_fl(x: float, y: float, alpha, gamma: float, n: int = 1, pos_weight: float = 1.0):
    """mpmath's numerical n-th derivative of :func:`sigmoid_fl` (an independent check of the chain rules)."""
    with mp.workdps(_dps_for(x)):
        value = mpmath.diff(
            lambda t: _sigmoid_fl_mp(t, mpf(y), alpha, mpf(gamma), mpf(pos_weight)), mpf(x), n
        )
    return +value


def _sigmoid_fl_mp(X, Y, alpha, G, W=1):
    p = 1 / (1 + mp.exp(-X))
    pt = p * Y + (1 - p) * (1 - Y)
    ce = -(W * Y * mp.log(p) + (1 - Y) * mp.log(1 - p))
    return _alpha_t(alpha, Y) * (1 - pt) ** G * ce


def sigmoid_fl_hess(x: float, y: float, alpha, gamma: float, pos_weight: float = 1.0):
    """d^2 FL / dx^2 by the literal chain rule in p, with (1-p_t)^(gamma-2) as written; (value, sum of
    |terms|).

    FL = a A CE with A = (1-p_t)^g: FL'' = a [A'' CE + 2 A' CE' + A CE''], p' = p(1-p), p'' = p'(1-2p),
    p_t' = (2y-1) p', A' = -g (1-p_t)^(g-1) p_t', A'' = g(g-1)(1-p_t)^(g-2) p_t'^2 - g (1-p_t)^(g-1) p_t'',
    CE' = -(W y/p - (1-y)/(1-p)) p', CE'' = (W y/p^2 + (1-y)/(1-p)^2) p'^2 - (W y/p - (1-y)/(1-p)) p''.
    Here 1 - p_t > 0 exactly (the precision resolves it), so the negative powers are harmless.
    """
    with mp.workdps(_dps_for(x)):
        X, Y, G, W = mpf(x), mpf(y), mpf(gamma), mpf(pos_weight)
        p = 1 / (1 + mp.exp(-X))
        q = 1 - p
        pt = p * Y + q * (1 - Y)
        m = 1 - pt
        ce = -(W * Y * mp.log(p) + (1 - Y) * mp.log(q))
        d1p = p * q
        d2p = d1p * (1 - 2 * p)
        dpt, d2pt = (2 * Y - 1) * d1p, (2 * Y - 1) * d2p
        a = _alpha_t(alpha, Y)
        zero = mpf(0)
        A = m**G
        A1 = -G * m ** (G - 1) * dpt if G != 0 else zero
        A2a = G * (G - 1) * m ** (G - 2) * dpt**2 if G != 0 else zero
        A2b = -G * m ** (G - 1) * d2pt if G != 0 else zero
        ratio = W * Y / p - (1 - Y) / q
        ce1 = -ratio * d1p
        ce2a = (W * Y / p**2 + (1 - Y) / q**2) * d1p**2
        ce2b = -ratio * d2p
        terms = [a * A2a * ce, a * A2b * ce, 2 * a * A1 * ce1, a * A * ce2a, a * A * ce2b]
        value, scale = mp.fsum(terms), mp.fsum(abs(t) for t in terms)
    return +value, +scale


def binary_fl(prob: float, y: float, alpha, gamma: float, pos_weight: float = 1.0):
    """alpha_t (1-p_t)^gamma CE of one probability, literally.

    -log 0 = +inf. The one convention needed is 0 * inf = 0: a term whose weight (alpha_t y for log p,
    alpha_t (1-y) for log(1-p)) is 0 contributes 0 even where its log is -inf (as xlogy does): a sample
    that alpha weights by 0 (alpha = 1 on a negative) is left out, not NaN.
    """
    with mp.workprec(EXACT_PREC):
        P, Y, G, W = mpf(prob), mpf(y), mpf(gamma), mpf(pos_weight)
        a = _alpha_t(alpha, Y)
        pt = P * Y + (1 - P) * (1 - Y)
        value = mpf(0)
        if a * W * Y > 0:
            value += a * (1 - pt) ** G * W * Y * (-mp.log(P) if P > 0 else mp.inf)
        if a * (1 - Y) > 0:
            value += a * (1 - pt) ** G * (1 - Y) * (-mp.log(1 - P) if P < 1 else mp.inf)
    return +value


def binary_fl_grad(prob: float, y: float, alpha, gamma: float, pos_weight: float = 1.0):
    """d FL / dp of :func:`binary_fl` by the chain rule, with (1-p_t)^(gamma-1) as written; (value, scale):

    FL = a (1-p_t)^g CE, d(1-p_t)/dp = 1 - 2y, dCE/dp = -(W y / p) + (1-y)/(1-p). 0 * inf = 0 as in binary_fl;
    the -log 0 side gives -inf (p = 0) or +inf (p = 1). scale = the sum of the terms' |values| (soft labels
    cancel them as the derivative passes through 0)."""
    with mp.workprec(EXACT_PREC):
        P, Y, G, W = mpf(prob), mpf(y), mpf(gamma), mpf(pos_weight)
        a = _alpha_t(alpha, Y)
        if a * W * Y > 0 and P == 0:
            return -mp.inf, mp.inf
        if a * (1 - Y) > 0 and P == 1:
            return mp.inf, mp.inf
        m = Y * (1 - P) + (1 - Y) * P
        ce = mpf(0)
        dce = mpf(0)
        if a * W * Y > 0:
            ce += -W * Y * mp.log(P)
            dce += -W * Y / P
        if a * (1 - Y) > 0:
            ce += -(1 - Y) * mp.log(1 - P)
            dce += (1 - Y) / (1 - P)
        first = a * G * m ** (G - 1) * (1 - 2 * Y) * ce if (G != 0 and m != 0) else mpf(0)
        value = first + a * m**G * dce
        scale = abs(first) + abs(a * m**G) * (
            (W * Y / P if a * W * Y > 0 else 0) + ((1 - Y) / (1 - P) if a * (1 - Y) > 0 else 0)
        )
    return +value, +scale


def categorical_fl_grad(probs, target, alpha, gamma: float):
    """d FL / dp_c of :func:`categorical_fl`: w_c [g u^(g-1) log p_c - u^g / p_c] with u = 1 - p_c;
    -inf at p_c = 0."""
    with mp.workprec(EXACT_PREC):
        P, G = [mpf(float(v)) for v in probs], mpf(gamma)
        w = _class_weights(target, alpha, len(P))
        out = []
        for wc, pc in zip(w, P, strict=True):
            if wc == 0:
                out.append(mpf(0))
            elif pc == 0:
                out.append(-mp.inf)
            else:
                u = 1 - pc
                first = G * u ** (G - 1) * mp.log(pc) if (G != 0 and u != 0) else mpf(0)
                out.append(wc * (first - u**G / pc))
    return [+v for v in out]


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
        value = mpmath.diff(
            lambda t: -_alpha_t(alpha, Y) * mp.log(1 / (1 + mp.exp(-(G * (2 * Y - 1) * t + B)))) / G, mpf(x)
        )
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


def fl_star_grad_mp(X, y: float, alpha, gamma: float, beta: float):
    """d FL*/dx at an mpf X (for mpmath.diff of the gradient, a check of :func:`fl_star_hess`)."""
    Y, G, B = mpf(y), mpf(gamma), mpf(beta)
    sign = 2 * Y - 1
    s = 1 / (1 + mp.exp(-(G * sign * X + B)))
    return -_alpha_t(alpha, Y) * sign * (1 - s)


def fl_star_hess(x: float, y: float, alpha, gamma: float, beta: float):
    """d^2 FL*/dx^2 by the chain rule: d/dx [-a y' (1 - s)] = a y' s (1-s) gamma y' = a gamma s (1-s)."""
    with mp.workdps(_dps_for(abs(gamma * x) + abs(beta))):
        X, Y, G, B = mpf(x), mpf(y), mpf(gamma), mpf(beta)
        sign = 2 * Y - 1
        s = 1 / (1 + mp.exp(-(G * sign * X + B)))
        value = _alpha_t(alpha, Y) * G * sign * sign * s * (1 - s)
    return +value


# ----------------------------------------------------------------------------------------------
# softmax / categorical


def _class_weights(target, alpha, num_classes):
    """w_c = y_c alpha_c for an int index or a soft target row; alpha None, a number, or a per-class
    sequence."""
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
    return [yc * ac for yc, ac in zip(y, a, strict=False)]


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
        value = -mp.fsum(wc * (1 - mp.exp(lp)) ** G * lp for wc, lp in zip(w, log_p, strict=False) if wc != 0)
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
            return -mp.fsum(
                wc * (1 - mp.exp(lp)) ** G * lp for wc, lp in zip(w, log_p, strict=False) if wc != 0
            )

        value = mpmath.diff(f, mpf(row[j]))
    return +value


def softmax_fl_hessian(row, target, alpha, gamma: float):
    """The C x C Hessian of :func:`softmax_fl` for one row, by the literal chain rule in p; (H, scale).

    With f(p) = -(1-p)^g log p, dp_c/dx_j = p_c (d_cj - p_j) and
    d2p_c/dx_j dx_l = p_c (d_cl - p_l) d_cj - p_c (d_cl - p_l) p_j - p_c p_j (d_jl - p_l):

        H_jl = sum_c w_c [f''(p_c) p_c^2 (d_cj - p_j)(d_cl - p_l) + f'(p_c) d2p_c/dx_j dx_l],
        f'(p) = g (1-p)^(g-1) log p - (1-p)^g / p,
        f''(p) = -g(g-1)(1-p)^(g-2) log p + 2 g (1-p)^(g-1) / p + (1-p)^g / p^2.

    ``scale`` is the largest sum of |terms| over the entries: the size of what the entries are computed from.
    """
    row = [float(v) for v in row]
    c_count = len(row)
    with mp.workdps(_dps_for(max(row) - min(row))):
        X, G = [mpf(v) for v in row], mpf(gamma)
        w = _class_weights(target, alpha, c_count)
        log_p = _log_softmax_mp(X)
        p = [mp.exp(lp) for lp in log_p]
        zero = mpf(0)
        f1, f2 = [], []
        for c in range(c_count):
            u, lp, pc = 1 - p[c], log_p[c], p[c]
            f1.append((G * u ** (G - 1) * lp if G != 0 else zero) - u**G / pc)
            f2.append(
                (-G * (G - 1) * u ** (G - 2) * lp + 2 * G * u ** (G - 1) / pc if G != 0 else zero)
                + u**G / pc**2
            )
        hess = [[zero] * c_count for _ in range(c_count)]
        scale = zero
        for j in range(c_count):
            for m_ in range(c_count):
                terms = []
                for c in range(c_count):
                    if w[c] == 0:
                        continue
                    dj = (1 if c == j else 0) - p[j]
                    dm = (1 if c == m_ else 0) - p[m_]
                    d2 = (
                        p[c] * dm * (1 if c == j else 0)
                        - p[c] * dm * p[j]
                        - p[c] * p[j] * ((1 if j == m_ else 0) - p[m_])
                    )
                    terms.append(w[c] * f2[c] * p[c] ** 2 * dj * dm)
                    terms.append(w[c] * f1[c] * d2)
                hess[j][m_] = mp.fsum(terms)
                scale = max(scale, mp.fsum(abs(t) for t in terms))
    return [[+h for h in r] for r in hess], +scale


def diff_softmax_fl_hessian_entry(row, target, alpha, gamma: float, j: int, m_: int):
    """mpmath's numerical second partial derivative of :func:`softmax_fl` (checks the chain rule above)."""
    row = [float(v) for v in row]
    with mp.workdps(_dps_for(max(row) - min(row))):
        w = _class_weights(target, alpha, len(row))
        G = mpf(gamma)

        def f(a, b):
            X = [mpf(v) for v in row]
            X[j] += a
            X[m_] += b
            log_p = _log_softmax_mp(X)
            return -mp.fsum(
                wc * (1 - mp.exp(lp)) ** G * lp for wc, lp in zip(w, log_p, strict=False) if wc != 0
            )

        value = mpmath.diff(f, (mpf(0), mpf(0)), (1, 1))
    return +value


def categorical_fl(probs, target, alpha, gamma: float):
    """-sum_c w_c (1-p_c)^gamma log p_c of one row of probabilities as given; a positive weight on p_c =
    0 is +inf."""
    with mp.workprec(EXACT_PREC):
        P, G = [mpf(float(v)) for v in probs], mpf(gamma)
        w = _class_weights(target, alpha, len(P))
        total = mpf(0)
        for wc, pc in zip(w, P, strict=False):
            if wc == 0:
                continue
            total += wc * (1 - pc) ** G * (-mp.log(pc) if pc > 0 else mp.inf)
    return +total


# ----------------------------------------------------------------------------------------------
# measuring the float64 reference against the functions above (used by tests/test_reference.py and
# tests/report_accuracy.py)

TINY = 2.2250738585072014e-308  # the smallest normal float64


DBL_MAX = 1.7976931348623157e308


def rounded_overflow(true):
    """``true`` as float64 would round it: +-inf beyond the largest double (|x| >= DBL_MAX + half an ulp)."""
    true = mpf(true)
    if not mp.isinf(true) and abs(true) >= mpf(DBL_MAX) * (1 + mpf(2) ** -54):
        return mp.inf if true > 0 else -mp.inf
    return true


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
