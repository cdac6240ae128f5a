"""Tests of the float64 NumPy reference (focal_ref/_reference.py): the ground truth of the project.

* against mpmath (tests/mp_reference.py), every function and gradient on the shared battery (tests/cases.py);
* gradients against the paper's Appendix B formulas, and finite for every finite logit;
* properties (hypothesis): gamma = 0 is cross entropy, FL <= alpha_t CE, the label/alpha symmetry, shift
  invariance of the softmax, monotonicity in p_t, the two-class softmax is the sigmoid;
* closed forms, reductions and the valid edge cases;
* bad input: one test each, the message naming the argument.
"""

import math

import mp_reference as mpr
import numpy as np
import pytest
import report_accuracy
import tolerances
from cases import GAMMAS
from hypothesis import example, given
from hypothesis import strategies as st
from mpmath import mpf
from scipy.special import expit, log_softmax

import focal_ref

TINY = mpr.TINY
EPS = np.finfo(np.float64).eps


def assert_close(actual, desired, rtol, scale=None):
    """|actual - desired| <= rtol * max(scale, TINY) elementwise, scale defaulting to |desired|.

    The floor TINY (the smallest normal float64) is the absolute test for subnormal results; see
    ``mp_reference.relative_error``. Equal infinities pass.
    """
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape
    scale = np.abs(desired) if scale is None else np.broadcast_to(scale, desired.shape)
    same_inf = np.isinf(desired) & (actual == desired)
    with np.errstate(invalid="ignore"):
        error = np.where(same_inf, 0.0, np.abs(actual - desired) / np.maximum(scale, TINY))
    bad = ~(error <= rtol)  # NaN fails
    assert not bad.any(), (
        f"{int(bad.sum())} of {bad.size} values off by more than {rtol:g} (worst {np.nanmax(error):.3g}); "
        f"first: actual {actual[bad].ravel()[0]!r}, desired {desired[bad].ravel()[0]!r}"
    )


# ----------------------------------------------------------------------------------------------
# against mpmath


@pytest.mark.parametrize("name", sorted(report_accuracy.TOLERANCES))
def test_reference_matches_mpmath(name):
    """Losses to 1e-12 relative, gradients to 1e-10 relative to the largest component, on a few hundred
    cases per function (random, |x| = 17, 40, 100, 745, soft labels next to 0 and 1, gamma 0..8, alpha
    None, 0, 1 and between). Results below the smallest normal float64 are compared absolutely."""
    errors, _ = report_accuracy.function_errors(name)
    assert errors.size >= 300
    worst = int(np.argmax(errors))
    assert errors[worst] <= report_accuracy.TOLERANCES[name], (
        f"{name}: case {worst} has error {errors[worst]:.3g}"
    )


def test_second_derivatives_are_in_the_accuracy_table():
    """API decision 3: every second derivative of the reference is measured against mpmath, and issue 13's
    weight / pos_weight / ignore_index too."""
    names = set(report_accuracy.TOLERANCES)
    assert {
        "sigmoid_focal_loss_hess",
        "sigmoid_focal_loss_star_hess",
        "softmax_focal_loss_hessian",
        "softmax_focal_loss_hvp",
        "sigmoid_focal_loss_hess[weights]",
        "binary_focal_loss[weights]",
    } <= names
    assert report_accuracy.TOLERANCES["softmax_focal_loss_hessian"] == tolerances.REFERENCE["hess"]


def test_hessian_battery_reaches_the_extremes():
    """The softmax Hessian battery holds saturated rows (spread 745), a tie, near-one-hot soft targets, and
    gamma in (0, 1), 0 and 8."""
    batteries = list(report_accuracy._hessian_battery())
    assert {g for *_, g in batteries} == {0.0, 0.1, 0.5, 1.0, 2.0, 8.0}
    spreads = {float(np.ptp(row)) for logits, *_ in batteries for row in logits}
    assert {0.0, 745.0} <= spreads
    soft = [t for _, t, *_ in batteries if t.ndim == 2]
    assert any(np.any(t == 1.0 - 1e-12) for t in soft)


def test_battery_reaches_the_extremes():
    """The accuracy battery really contains saturated logits, near-one-hot soft labels and gamma up to 8."""
    batteries = list(report_accuracy._sigmoid_battery())
    logits = np.concatenate([x for x, *_ in batteries])
    targets = np.concatenate([y for _, y, *_ in batteries])
    assert {-745.0, -100.0, -40.0, -17.0, 17.0, 40.0, 100.0, 745.0} <= set(logits.tolist())
    assert {1e-12, 1.0 - 1e-12} <= set(targets.tolist())
    assert {g for *_, g in batteries} == {0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 8.0}
    assert {a for _, _, a, _ in batteries} == {None, 0.0, 0.25, 0.5, 1.0}


def test_mpmath_oracle_closed_forms():
    """The oracle itself on values known exactly: at x = 0, p = 1/2 so FL = alpha_t 2^-gamma log 2."""
    for y, alpha, gamma in [(1.0, None, 2.0), (0.0, 0.25, 0.5), (0.3, 0.25, 1.0)]:
        a_t = 1 if alpha is None else mpf(alpha) * mpf(y) + (1 - mpf(alpha)) * (1 - mpf(y))
        expected = a_t * mpf(2) ** -gamma * mpr.mp.log(2)
        assert abs(mpr.sigmoid_fl(0.0, y, alpha, gamma) - expected) < mpf(10) ** -55
    # a uniform row: p_c = 1/C, FL = (1 - 1/C)^gamma log C
    assert abs(mpr.softmax_fl([3.0] * 4, 2, None, 2.0) - mpf(0.75) ** 2 * mpr.mp.log(4)) < mpf(10) ** -55
    # the dominant class at x = 745: FL = (1 - p)^gamma (-log p) with 1 - p ~ 4 e^-745, far below float64
    tiny_loss = mpr.softmax_fl([745.0, 0.0, 0.0, 0.0, 0.0], 0, None, 1.0)
    assert abs(tiny_loss / (4 * mpr.mp.exp(-745)) ** 2 - 1) < mpf(10) ** -50


@pytest.mark.parametrize("x", [-745.0, -40.0, -1.5, 0.0, 17.0, 100.0, 745.0])
@pytest.mark.parametrize("y", [0.0, 1e-12, 0.3, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 5.0])
def test_mpmath_oracle_gradients_match_numerical_derivative(x, y, gamma):
    """The oracle's hand-derived chain rule agrees with mpmath's own numerical derivative of the loss."""
    analytic, _ = mpr.sigmoid_fl_grad(x, y, 0.25, gamma)
    assert abs(analytic - mpr.diff_sigmoid_fl(x, y, 0.25, gamma)) <= mpf(10) ** -40 * abs(analytic)
    if y in (0.0, 1.0) and gamma > 0:
        analytic = mpr.fl_star_grad(x, y, 0.25, gamma, 1.0)
        assert abs(analytic - mpr.diff_fl_star(x, y, 0.25, gamma, 1.0)) <= mpf(10) ** -40 * abs(analytic)


@pytest.mark.parametrize("x", [-745.0, -40.0, -1.5, 0.0, 17.0, 100.0])
@pytest.mark.parametrize("y", [0.0, 1e-12, 0.3, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.5, 5.0])
def test_mpmath_oracle_second_derivatives_match_numerical_derivative(x, y, gamma):
    """The oracle's literal second-derivative chain rule (with (1-p_t)^(gamma-2)) agrees with mpmath's own
    numerical second derivative of the loss; with a pos_weight too, and for FL*."""
    for pos_weight in (1.0, 3.5):
        analytic, scale = mpr.sigmoid_fl_hess(x, y, 0.25, gamma, pos_weight)
        numeric = mpr.diff_sigmoid_fl(x, y, 0.25, gamma, n=2, pos_weight=pos_weight)
        assert abs(analytic - numeric) <= mpf(10) ** -35 * scale
    if y in (0.0, 1.0) and gamma > 0:
        with mpr.mp.workdps(mpr._dps_for(abs(gamma * x) + 1.0)):
            numeric = mpr.mpmath.diff(lambda t: mpr.fl_star_grad_mp(t, y, 0.25, gamma, 1.0), mpf(x))
        assert (
            abs(mpr.fl_star_hess(x, y, 0.25, gamma, 1.0) - numeric)
            <= mpf(10) ** -35 * abs(numeric) + mpf(10) ** -300
        )


@pytest.mark.parametrize(
    "row, target",
    [
        ([40.0, 0, 0, 0], 0),
        ([-40.0, 0, 0, 0], 0),
        ([1.0, 2.0, -3.0, 0.5], 2),
        ([17.0, 0, 0, 0], np.array([0.7, 0.2, 0.1, 0.0])),
    ],
)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_mpmath_oracle_softmax_hessian_matches_numerical_derivative(row, target, gamma):
    alpha = (0.1, 0.3, 0.7, 1.0)
    analytic, _ = mpr.softmax_fl_hessian(row, target, alpha, gamma)
    scale = max(abs(h) for r in analytic for h in r)
    for j, k in [(0, 0), (0, 1), (1, 1), (2, 3)]:
        numeric = mpr.diff_softmax_fl_hessian_entry(row, target, alpha, gamma, j, k)
        assert abs(analytic[j][k] - numeric) <= mpf(10) ** -30 * scale


@pytest.mark.parametrize(
    "row, target",
    [
        ([745.0, 0, 0, 0, 0], 0),
        ([-745.0, 0, 0, 0, 0], 0),
        ([1.0, 2.0, -3.0, 0.5, 0.0], 2),
        ([17.0, 0, 0, 0, 0], np.array([0.7, 0.2, 0.1, 0.0, 0.0])),
    ],
)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_mpmath_oracle_softmax_gradient_matches_numerical_derivative(row, target, gamma):
    alpha = (0.1, 0.3, 0.5, 0.7, 1.0)
    analytic = mpr.softmax_fl_grad(row, target, alpha, gamma)
    scale = max(abs(g) for g in analytic)
    for j in range(len(row)):
        assert abs(analytic[j] - mpr.diff_softmax_fl(row, target, alpha, gamma, j)) <= mpf(10) ** -40 * scale


# ----------------------------------------------------------------------------------------------
# gradients: the paper's Appendix B, and finite everywhere

APPENDIX_GAMMAS = (0.0, 0.1, 0.5, 0.9, 1.0, 2.0)
WIDE_LOGITS = np.concatenate(
    [
        [
            -1e308,
            -1000.0,
            -745.0,
            -710.0,
            -100.0,
            -40.0,
            -17.0,
            -1.0,
            -1e-300,
            0.0,
            1e-300,
            1.0,
            17.0,
            40.0,
            100.0,
            710.0,
            745.0,
            1000.0,
            1e308,
        ],
        np.random.default_rng(1).normal(0.0, 10.0, 50),
    ]
)


def sigmoid(z):
    """sigma(z) = exp(-log(1 + e^-z)), independently of the reference; scipy's expit flushes to 0 below
    e^-709 (it computes 1/(1 + e^-z)), where the gradients below are still normal or subnormal numbers.
    The exp amplifies the rounding of log(1 + e^-z): relative error up to about eps |z|."""
    return np.exp(-np.logaddexp(0.0, -z))


def _appendix_b_parts(x, y):
    """y' = 2y-1, x_t = y' x, p_t, 1-p_t and log p_t of hard labels, computed independently of the
    reference."""
    sign = 2.0 * y - 1.0
    x_t = sign * x
    return sign, x_t, sigmoid(x_t), sigmoid(-x_t), -np.logaddexp(0.0, -x_t)


def _appendix_b_rtol(z):
    """The independent sigma(z) of this file carries a relative error up to about eps (1 + |z|)."""
    return 4 * EPS * (1.0 + np.minimum(np.abs(z), 800.0))


@pytest.mark.parametrize("gamma", APPENDIX_GAMMAS)
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_fl_gradient_is_appendix_b(gamma, label):
    """dFL/dx = y'(1-p_t)^gamma (gamma p_t log p_t + p_t - 1), alpha = None (Lin et al. 2017, Appendix B)."""
    x = WIDE_LOGITS
    y = np.full_like(x, label)
    sign, x_t, p_t, one_minus_p_t, log_p_t = _appendix_b_parts(x, y)
    # p_t - 1 is written -(1 - p_t) with 1 - p_t = sigma(-x_t): p_t - 1 itself rounds to 0 for x_t > 37.
    # Both terms in the bracket are <= 0: no cancellation, so the formula is accurate as written.
    expected = sign * one_minus_p_t**gamma * (gamma * p_t * log_p_t - one_minus_p_t)
    grad = focal_ref.sigmoid_focal_loss_grad(x, y, alpha=None, gamma=gamma)
    assert np.all(np.isfinite(grad))
    assert_close(grad, expected, (1.0 + gamma) * _appendix_b_rtol(x_t))


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_ce_gradient_is_appendix_b(label):
    """dCE/dx = y'(p_t - 1): the focal gradient at gamma = 0."""
    x = WIDE_LOGITS
    y = np.full_like(x, label)
    sign, x_t, _, one_minus_p_t, _ = _appendix_b_parts(x, y)
    assert_close(
        focal_ref.sigmoid_focal_loss_grad(x, y, alpha=None, gamma=0.0),
        -sign * one_minus_p_t,
        _appendix_b_rtol(x_t),
    )


@pytest.mark.parametrize(
    "gamma, beta", [(0.1, 0.0), (0.5, 1.0), (0.9, -1.0), (1.0, 0.0), (2.0, 1.0), (4.0, 0.0)]
)
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_fl_star_gradient_is_appendix_b(gamma, beta, label):
    """dFL*/dx = y'(p_t* - 1) with p_t* = sigma(gamma y' x + beta), alpha = None (Appendix B)."""
    x = WIDE_LOGITS[np.abs(WIDE_LOGITS) < 1e300]  # gamma * 1e308 would overflow z itself
    y = np.full_like(x, label)
    sign = 2.0 * y - 1.0
    z = gamma * sign * x + beta
    expected = -sign * sigmoid(-z)  # p_t* - 1 = -sigma(-z)
    grad = focal_ref.sigmoid_focal_loss_star_grad(x, y, gamma=gamma, beta=beta, alpha=None)
    assert np.all(np.isfinite(grad))
    assert_close(grad, expected, _appendix_b_rtol(z))


finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@given(
    x=st.lists(finite_floats, min_size=1, max_size=8),
    data=st.data(),
    gamma=st.sampled_from(APPENDIX_GAMMAS + (5.0, 8.0)),
    alpha=st.sampled_from([None, 0.0, 0.25, 1.0]),
)
def test_sigmoid_gradient_finite_for_every_finite_logit(x, data, gamma, alpha):
    """No NaN or inf in the sigmoid gradient for any finite logit, any target in [0, 1], any gamma (< 1
    included)."""
    y = data.draw(st.lists(st.floats(0.0, 1.0), min_size=len(x), max_size=len(x)))
    grad = focal_ref.sigmoid_focal_loss_grad(x, y, alpha=alpha, gamma=gamma)
    assert np.all(np.isfinite(grad))


@given(
    rows=st.integers(1, 4).flatmap(
        lambda c: st.lists(st.lists(finite_floats, min_size=c, max_size=c), min_size=1, max_size=4)
    ),
    data=st.data(),
    gamma=st.sampled_from(APPENDIX_GAMMAS + (5.0,)),
)
def test_softmax_gradient_finite_for_every_finite_logit(rows, data, gamma):
    """Also when the logits of a row are farther apart than the float64 range (p underflows to 0)."""
    logits = np.array(rows)
    n, c = logits.shape
    index = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    assert np.all(np.isfinite(focal_ref.softmax_focal_loss_grad(logits, index, gamma=gamma)))
    soft = np.array(
        data.draw(st.lists(st.lists(st.floats(0.0, 1.0), min_size=c, max_size=c), min_size=n, max_size=n))
    )
    assert np.all(np.isfinite(focal_ref.softmax_focal_loss_grad(logits, soft, gamma=gamma, alpha=0.5)))


def test_softmax_gradient_beyond_the_float_range():
    """A row whose logits differ by more than 1.8e308: p of the low class is 0, and the gradient is p - y
    (CE)."""
    for gamma in (0.0, 0.5, 2.0):
        grad = focal_ref.softmax_focal_loss_grad([1e308, -1e308, 0.0], 1, gamma=gamma)
        np.testing.assert_array_equal(grad, [1.0, -1.0, 0.0])
        np.testing.assert_array_equal(
            focal_ref.softmax_focal_loss_grad([1e308, -1e308, 0.0], 0, gamma=gamma), 0.0
        )


# ----------------------------------------------------------------------------------------------
# properties

logit = st.floats(-800.0, 800.0)
moderate_logit = st.floats(-30.0, 30.0)
# Dyadic labels and alphas: 1 - y and 1 - alpha are exact, so the symmetry below holds without rounding.
dyadic = st.integers(0, 1024).map(lambda k: k / 1024)
gammas = st.sampled_from(GAMMAS + (0.1, 8.0))
binary_alpha = st.one_of(st.none(), dyadic)


@st.composite
def sigmoid_inputs(draw, logits=logit):
    n = draw(st.integers(1, 8))
    x = np.array(draw(st.lists(logits, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), dyadic), min_size=n, max_size=n)))
    return x, y


@st.composite
def softmax_inputs(draw, logits=moderate_logit, soft=None):
    c = draw(st.integers(2, 6))
    n = draw(st.integers(1, 4))
    x = np.array(draw(st.lists(st.lists(logits, min_size=c, max_size=c), min_size=n, max_size=n)))
    if soft is None:
        soft = draw(st.booleans())
    if soft:
        y = np.array(draw(st.lists(st.lists(dyadic, min_size=c, max_size=c), min_size=n, max_size=n)))
    else:
        y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    alpha = draw(st.one_of(st.none(), dyadic, st.lists(dyadic, min_size=c, max_size=c)))
    return x, y, alpha


def _weights(y, alpha, c):
    """w_c = y_c alpha_c as an (N, C) array, for index or probability targets."""
    y = np.eye(c)[y] if y.dtype.kind == "i" else y
    a = np.ones(c) if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), (c,))
    return y * a


@given(sigmoid_inputs(), binary_alpha)
def test_gamma_zero_is_alpha_weighted_bce(inputs, alpha):
    """gamma = 0: alpha_t * BCE, the BCE computed independently with np.logaddexp (log(1+e^z))."""
    x, y = inputs
    bce = y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)
    alpha_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
    assert_close(focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=0.0), alpha_t * bce, 4 * EPS)


@given(softmax_inputs())
def test_gamma_zero_is_weighted_cross_entropy(inputs):
    """gamma = 0: -sum_c w_c log p_c, with scipy's log_softmax as the independent log p.

    scipy's x - max - log(sum exp(x - max)) has an absolute error of a few eps times (1 + |x - max|), and
    loses all relative accuracy when log p_t -> 0 (the reference's log1p does not; mpmath tests it there),
    so the tolerance is absolute at that size."""
    x, y, alpha = inputs
    w = _weights(y, alpha, x.shape[1])
    expected = -(w * log_softmax(x, axis=-1)).sum(axis=-1)
    atol = 8 * EPS * (w * (1.0 + np.abs(x - x.max(axis=-1, keepdims=True)))).sum(axis=-1)
    actual = focal_ref.softmax_focal_loss(x, y, alpha=alpha, gamma=0.0)
    assert np.all(np.abs(actual - expected) <= atol + 1e-14 * np.abs(expected))


@given(sigmoid_inputs(), binary_alpha, gammas)
def test_sigmoid_focal_loss_at_most_alpha_weighted_ce(inputs, alpha, gamma):
    """FL = alpha_t (1-p_t)^gamma CE <= alpha_t CE, since (1-p_t)^gamma <= 1; exactly, as rounding is
    monotone."""
    x, y = inputs
    ce = focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=0.0)
    assert np.all(focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma) <= ce)


@given(softmax_inputs(logits=logit), gammas)
def test_softmax_focal_loss_at_most_weighted_ce(inputs, gamma):
    x, y, alpha = inputs
    ce = focal_ref.softmax_focal_loss(x, y, alpha=alpha, gamma=0.0)
    assert np.all(focal_ref.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma) <= ce)


@given(sigmoid_inputs(), binary_alpha, gammas)
def test_label_symmetry(inputs, alpha, gamma):
    """(x, y, alpha) -> (-x, 1-y, 1-alpha) leaves the loss unchanged and flips the sign of the gradient.

    sigma(-x) and sigma(x) trade places exactly, and 1 - y, 1 - alpha are exact for dyadic values, so the
    two evaluations add the same terms in another order: equal to the last bit."""
    x, y = inputs
    mirror = None if alpha is None else 1.0 - alpha
    loss = focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
    np.testing.assert_array_equal(focal_ref.sigmoid_focal_loss(-x, 1.0 - y, alpha=mirror, gamma=gamma), loss)
    grad = focal_ref.sigmoid_focal_loss_grad(x, y, alpha=alpha, gamma=gamma)
    np.testing.assert_array_equal(
        focal_ref.sigmoid_focal_loss_grad(-x, 1.0 - y, alpha=mirror, gamma=gamma), -grad
    )


@given(
    st.lists(st.tuples(dyadic, st.one_of(st.sampled_from([0.0, 1.0]), dyadic)), min_size=1, max_size=8),
    binary_alpha,
    gammas,
)
def test_label_symmetry_of_probabilities(pairs, alpha, gamma):
    """(p, y, alpha) -> (1-p, 1-y, 1-alpha) for binary_focal_loss, with dyadic p so that 1 - p is exact.
    log1p(-(1 - p)) and log(p) are the same number rounded by two routes: equal to a few eps."""
    p, y = np.array(pairs).T
    mirror = None if alpha is None else 1.0 - alpha
    assert_close(
        focal_ref.binary_focal_loss(1.0 - p, 1.0 - y, alpha=mirror, gamma=gamma),
        focal_ref.binary_focal_loss(p, y, alpha=alpha, gamma=gamma),
        4 * EPS,
    )


@given(softmax_inputs(), gammas, st.floats(-30.0, 30.0))
def test_softmax_shift_invariance(inputs, gamma, shift):
    """softmax(x + c) = softmax(x). x + c is rounded (|error_j| <= eps/2 |x_j + c|), and each term of the
    loss has |d log term / dx_j| <= gamma + 1, so the loss may move by (gamma + 1) sum_j eps |x_j + c|."""
    x, y, alpha = inputs
    moved = x + shift
    loss = focal_ref.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma)
    tol = 1e-13 + (gamma + 1.0) * EPS * np.abs(moved).sum(axis=-1)
    assert_close(focal_ref.softmax_focal_loss(moved, y, alpha=alpha, gamma=gamma), loss, tol)


# Rounding may move neighbouring values by an ulp the wrong way: monotone up to 4 eps relative.
MONOTONE_SLACK = 4 * EPS


def assert_non_increasing(values):
    """Each value at most the one before it (up to the rounding slack); two equal infinities pass."""
    assert np.all(values[1:] <= values[:-1] * (1.0 + MONOTONE_SLACK)), values


@given(st.lists(logit, min_size=2, max_size=20), binary_alpha, gammas)
def test_hard_label_focal_loss_decreases_in_p_t(x, alpha, gamma):
    """For y = 1, p_t = sigma(x) rises with x; for y = 0 it falls. The loss must follow, and with probability
    input too (binary_focal_loss with y = 1, where p_t = p)."""
    x = np.sort(np.array(x))
    for label, direction in ((1.0, 1.0), (0.0, -1.0)):
        assert_non_increasing(
            focal_ref.sigmoid_focal_loss(x, np.full_like(x, label), alpha=alpha, gamma=gamma)[
                :: int(direction)
            ]
        )
    p_t = sigmoid(x)  # may be 0 (x < -745): the loss is then +inf
    assert_non_increasing(focal_ref.binary_focal_loss(p_t, np.ones_like(p_t), alpha=alpha, gamma=gamma))


@given(
    st.lists(moderate_logit, min_size=2, max_size=5),
    st.lists(moderate_logit, min_size=2, max_size=20),
    gammas,
)
def test_softmax_focal_loss_decreases_in_target_logit(others, target_logits, gamma):
    """Raising the target class's logit (the others fixed) raises p_t, and the loss must not rise."""
    target_logits = np.sort(np.array(target_logits))
    rows = np.array([[t] + others for t in target_logits])
    assert_non_increasing(focal_ref.softmax_focal_loss(rows, np.zeros(len(rows), dtype=int), gamma=gamma))
    p_t = np.linspace(0.0, 1.0, 101)
    probs = np.stack([p_t, 1.0 - p_t], axis=-1)
    assert_non_increasing(focal_ref.categorical_focal_loss(probs, np.zeros(len(p_t), dtype=int), gamma=gamma))


@given(
    st.lists(st.tuples(st.floats(-100.0, 100.0), st.floats(-100.0, 100.0)), min_size=1, max_size=8),
    gammas,
    st.data(),
)
def test_two_class_softmax_is_sigmoid_of_logit_difference(pairs, gamma, data):
    """C = 2, hard labels: softmax([a, b]) puts p = sigma(b - a) on class 1, so FL equals the sigmoid FL of
    b - a with class 1 as the positive; alpha = None, and [1 - alpha, alpha] maps to alpha."""
    logits = np.array(pairs)
    index = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(pairs), max_size=len(pairs))))
    d = logits[:, 1] - logits[:, 0]
    y = index.astype(np.float64)
    for alpha, class_alpha in ((None, None), (0.25, [0.75, 0.25])):
        assert_close(
            focal_ref.softmax_focal_loss(logits, index, alpha=class_alpha, gamma=gamma),
            focal_ref.sigmoid_focal_loss(d, y, alpha=alpha, gamma=gamma),
            1e-13,
        )
    grad = focal_ref.softmax_focal_loss_grad(logits, index, alpha=None, gamma=gamma)
    sigmoid_grad = focal_ref.sigmoid_focal_loss_grad(d, y, alpha=None, gamma=gamma)
    scale = np.abs(sigmoid_grad)
    assert_close(grad[:, 1], sigmoid_grad, 1e-12, scale)
    assert_close(grad[:, 0], -sigmoid_grad, 1e-12, scale)


# ----------------------------------------------------------------------------------------------
# closed forms, reductions and valid edge cases


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, 0.0, 0.25, 1.0])
def test_sigmoid_at_zero_logit(gamma, alpha):
    """x = 0: p = 1/2 = 1 - p_t for every y (soft too), so FL = alpha_t 2^-gamma log 2."""
    y = np.array([0.0, 0.3, 0.5, 1.0])
    alpha_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
    assert_close(
        focal_ref.sigmoid_focal_loss(np.zeros(4), y, alpha=alpha, gamma=gamma),
        alpha_t * 2.0**-gamma * math.log(2.0) * np.ones(4),
        2 * EPS,
    )


def test_paper_100x_claim():
    """gamma = 2, p_t = 0.9: FL is CE / 100 (Lin et al. 2017, §3.2); and p_t = 1 - 1/sqrt(1000) gives
    1000x."""
    fl = focal_ref.binary_focal_loss(0.9, 1.0, alpha=None, gamma=2.0)
    ce = focal_ref.binary_focal_loss(0.9, 1.0, alpha=None, gamma=0.0)
    assert_close(ce, -math.log(0.9), EPS)
    assert_close(ce / fl, 100.0, 1e-14)
    p_t = 1.0 - 1.0 / math.sqrt(1000.0)
    ratio = focal_ref.binary_focal_loss(p_t, 1.0, alpha=None, gamma=0.0) / focal_ref.binary_focal_loss(
        p_t, 1.0, alpha=None, gamma=2.0
    )
    assert_close(ratio, 1000.0, 1e-13)


@pytest.mark.parametrize("num_classes", [2, 3, 10])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_uniform_row(num_classes, gamma):
    """Tied logits: p_c = 1/C, so FL = (1 - 1/C)^gamma log C for any index target."""
    logits = np.full((num_classes, num_classes), 2.5)
    expected = (1.0 - 1.0 / num_classes) ** gamma * math.log(num_classes)
    # the expected value is itself rounded: (1 - 1/C)^gamma carries about gamma + 1 ulp
    assert_close(
        focal_ref.softmax_focal_loss(logits, np.arange(num_classes), gamma=gamma),
        np.full(num_classes, expected),
        (gamma + 4) * EPS,
    )


def test_alpha_edges_weight_one_side():
    """alpha = 1 keeps only positives, alpha = 0 only negatives, None weighs both by 1."""
    x = np.array([-3.0, 0.5, 2.0, 7.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    full = focal_ref.sigmoid_focal_loss(x, y, alpha=None)
    np.testing.assert_array_equal(focal_ref.sigmoid_focal_loss(x, y, alpha=1.0), full * y)
    np.testing.assert_array_equal(focal_ref.sigmoid_focal_loss(x, y, alpha=0.0), full * (1.0 - y))
    assert_close(focal_ref.sigmoid_focal_loss(x, y, alpha=0.25), full * np.where(y == 1, 0.25, 0.75), EPS)


def test_alpha_zero_weight_on_infinite_term_is_zero():
    """binary_focal_loss: a weight of 0 on a term whose log is -inf gives 0, not 0 * inf = NaN (a negative
    with p = 1 under alpha = 1; a positive with p = 0 under alpha = 0)."""
    assert focal_ref.binary_focal_loss(1.0, 0.0, alpha=1.0) == 0.0
    assert focal_ref.binary_focal_loss(0.0, 1.0, alpha=0.0) == 0.0
    assert focal_ref.binary_focal_loss(1.0, 0.0, alpha=0.25) == math.inf  # -log 0 with a positive weight
    assert focal_ref.categorical_focal_loss([[0.0, 1.0]], [0], alpha=[0.0, 1.0])[0] == 0.0
    assert focal_ref.categorical_focal_loss([[0.0, 1.0]], [0], alpha=[0.5, 1.0])[0] == math.inf


def test_soft_targets_are_the_torchvision_form():
    """Soft labels: one modulating factor (1-p_t)^gamma for the whole CE, p_t = p y + (1-p)(1-y)."""
    x, y = np.array([1.5, -2.0]), np.array([0.3, 0.8])
    p = expit(x)
    p_t = p * y + (1 - p) * (1 - y)
    ce = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    assert_close(focal_ref.sigmoid_focal_loss(x, y), alpha_t * (1 - p_t) ** 2 * ce, 1e-14)
    assert_close(focal_ref.binary_focal_loss(p, y), alpha_t * (1 - p_t) ** 2 * ce, 1e-14)


def test_python_lists_and_0d_inputs():
    value = 0.25 * 0.25 * math.log(2.0)  # alpha = 0.25, gamma = 2, x = 0, y = 1
    out = focal_ref.sigmoid_focal_loss(0.0, 1.0)
    assert out.shape == () and out.dtype == np.float64
    assert_close(out, value, EPS)
    assert_close(focal_ref.sigmoid_focal_loss([0.0, 0.0], [1, 1]), [value, value], EPS)
    assert_close(focal_ref.binary_focal_loss([0.5], [True]), [value], EPS)
    out = focal_ref.softmax_focal_loss([0.0, 0.0], 1, gamma=1.0)  # one sample: 1-d logits, 0-d index
    assert out.shape == ()
    assert_close(out, 0.5 * math.log(2.0), EPS)
    assert_close(focal_ref.softmax_focal_loss([[0.0, 0.0]], [[0, 1]], gamma=1.0), [0.5 * math.log(2.0)], EPS)
    assert focal_ref.sigmoid_focal_loss_grad(0.0, 1.0, alpha=None, gamma=0.0) == -0.5
    assert focal_ref.sigmoid_focal_loss_star(0.0, 1, gamma=1.0, beta=0.0, alpha=None) == math.log(2.0)
    assert focal_ref.softmax_focal_loss_grad([0.0, 0.0], 0, gamma=0.0).tolist() == [-0.5, 0.5]


@pytest.mark.parametrize(
    "fn, args",
    [
        (
            focal_ref.sigmoid_focal_loss,
            ([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]], [[1.0, 0.0, 0.3], [0.0, 1.0, 1.0]]),
        ),
        (
            focal_ref.binary_focal_loss,
            ([[0.5, 0.1, 0.9], [0.7, 0.2, 0.99]], [[1.0, 0.0, 0.3], [0.0, 1.0, 1.0]]),
        ),
        (
            focal_ref.sigmoid_focal_loss_star,
            ([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]),
        ),
        (focal_ref.softmax_focal_loss, ([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0], [2.0, 2.0, 0.0]], [2, 0, 1])),
        (
            focal_ref.categorical_focal_loss,
            ([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]], [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]),
        ),
    ],
)
def test_reductions(fn, args):
    none = fn(*args, reduction="none")
    assert fn(*args, reduction="sum") == pytest.approx(none.sum(), rel=1e-15)
    assert fn(*args, reduction="mean") == pytest.approx(none.sum() / none.size, rel=1e-15)
    assert np.ndim(fn(*args, reduction="mean")) == 0


def test_ignore_index():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [1.0, -1.0, 0.0], [0.0, 4.0, 0.0]])
    targets = np.array([0, -100, 2, -100])
    kept = focal_ref.softmax_focal_loss(logits[[0, 2]], targets[[0, 2]])
    none = focal_ref.softmax_focal_loss(logits, targets, ignore_index=-100)
    np.testing.assert_array_equal(none, [kept[0], 0.0, kept[1], 0.0])
    assert focal_ref.softmax_focal_loss(logits, targets, ignore_index=-100, reduction="sum") == kept.sum()
    assert (
        focal_ref.softmax_focal_loss(logits, targets, ignore_index=-100, reduction="mean") == kept.sum() / 2
    )
    grad = focal_ref.softmax_focal_loss_grad(logits, targets, ignore_index=-100)
    np.testing.assert_array_equal(grad[[1, 3]], 0.0)
    np.testing.assert_array_equal(
        grad[[0, 2]], focal_ref.softmax_focal_loss_grad(logits[[0, 2]], targets[[0, 2]])
    )
    probs = np.exp(log_softmax(logits, axis=-1))
    assert focal_ref.categorical_focal_loss(
        probs, targets, ignore_index=-100, reduction="mean"
    ) == pytest.approx(kept.sum() / 2, rel=1e-13)
    # an index in range can be the ignored one too
    assert focal_ref.softmax_focal_loss(logits, [0, 1, 2, 1], ignore_index=1, reduction="sum") == kept.sum()


def test_all_ignored_mean_is_zero():
    out = focal_ref.softmax_focal_loss(np.ones((3, 4)), [-1, -1, -1], ignore_index=-1, reduction="mean")
    assert out == 0.0 and np.ndim(out) == 0
    assert (
        focal_ref.softmax_focal_loss(np.ones((3, 4)), [-1, -1, -1], ignore_index=-1, reduction="sum") == 0.0
    )
    assert focal_ref.sigmoid_focal_loss(np.zeros(0), np.zeros(0), reduction="mean") == 0.0


def test_class_axis():
    """axis=1 on (N, C, H) is the same as moving the class axis last; the gradient keeps the logits'
    layout."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 3.0, (2, 4, 3))
    index = rng.integers(0, 4, (2, 3))
    soft = rng.dirichlet(np.ones(4), (2, 3)).transpose(0, 2, 1)  # classes on axis 1
    last = np.moveaxis(logits, 1, -1)
    alpha = [0.1, 0.2, 0.3, 0.4]
    for t, t_last in ((index, index), (soft, np.moveaxis(soft, 1, -1))):
        np.testing.assert_array_equal(
            focal_ref.softmax_focal_loss(logits, t, alpha=alpha, axis=1),
            focal_ref.softmax_focal_loss(last, t_last, alpha=alpha),
        )
        grad = focal_ref.softmax_focal_loss_grad(logits, t, alpha=alpha, axis=1)
        assert grad.shape == logits.shape
        np.testing.assert_array_equal(
            np.moveaxis(grad, 1, -1), focal_ref.softmax_focal_loss_grad(last, t_last, alpha=alpha)
        )


def test_per_class_alpha():
    """A sequence alpha weighs each class; a number weighs all classes alike (for index targets: alpha_t)."""
    logits = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    index = np.array([1, 0])
    base = focal_ref.softmax_focal_loss(logits, index, alpha=None)
    np.testing.assert_array_equal(
        focal_ref.softmax_focal_loss(logits, index, alpha=[0.2, 0.5, 0.9]), base * np.array([0.5, 0.2])
    )
    np.testing.assert_array_equal(focal_ref.softmax_focal_loss(logits, index, alpha=0.25), base * 0.25)
    np.testing.assert_array_equal(
        focal_ref.softmax_focal_loss(logits, index, alpha=np.array([0.2, 0.5, 0.9])),
        base * np.array([0.5, 0.2]),
    )


# ----------------------------------------------------------------------------------------------
# bad input: one test each, the message names the argument

X3, Y3 = [0.5, -1.0, 2.0], [1.0, 0.0, 1.0]
ROWS = [[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]]

BAD_INPUT = {
    "shape mismatch": (
        lambda: focal_ref.sigmoid_focal_loss(X3, [1.0, 0.0]),
        ValueError,
        "targets must have the shape of logits",
    ),
    "softmax target shape": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1, 2]),
        ValueError,
        r"targets must have the shape of logits",
    ),
    "target above 1": (
        lambda: focal_ref.sigmoid_focal_loss(X3, [1.0, 0.0, 1.5]),
        ValueError,
        r"targets must lie in \[0, 1\]",
    ),
    "target below 0": (
        lambda: focal_ref.binary_focal_loss([0.5], [-0.1]),
        ValueError,
        r"targets must lie in \[0, 1\]",
    ),
    "target NaN": (
        lambda: focal_ref.sigmoid_focal_loss(X3, [1.0, np.nan, 0.0]),
        ValueError,
        r"targets .*NaN",
    ),
    "target not a number": (
        lambda: focal_ref.sigmoid_focal_loss(X3, ["a", "b", "c"]),
        TypeError,
        "targets must be",
    ),
    "index too large": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 3]),
        ValueError,
        r"targets must be class indices in \[0, 3\)",
    ),
    "negative index": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, -1], ignore_index=-100),
        ValueError,
        r"targets must be class indices .*got -1",
    ),
    "float index": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0.0, 1.0]),
        TypeError,
        "targets .* must be integers",
    ),
    "negative soft target": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [[1.2, -0.2, 0.0], [1.0, 0.0, 0.0]]),
        ValueError,
        r"targets must lie in \[0, 1\]",
    ),
    "gamma negative": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, gamma=-0.5),
        ValueError,
        "gamma must be >= 0",
    ),
    "gamma NaN": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], gamma=float("nan")),
        ValueError,
        "gamma must be finite",
    ),
    "gamma not a number": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, gamma="2"),
        TypeError,
        "gamma must be a real number",
    ),
    "alpha above 1": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, alpha=1.5),
        ValueError,
        r"alpha must lie in \[0, 1\]",
    ),
    "alpha negative": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], alpha=-0.1),
        ValueError,
        r"alpha must lie in \[0, 1\]",
    ),
    "alpha NaN": (
        lambda: focal_ref.binary_focal_loss([0.5], [1.0], alpha=float("nan")),
        ValueError,
        r"alpha must lie in \[0, 1\]",
    ),
    "alpha not a number": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, alpha="0.25"),
        TypeError,
        "alpha must be a real number",
    ),
    "binary alpha vector": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, alpha=[0.25, 0.75]),
        TypeError,
        "alpha must be a real number",
    ),
    "class alpha not a number": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], alpha="abc"),
        TypeError,
        "alpha must be None, a number",
    ),
    "class alpha wrong length": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], alpha=[0.2, 0.8]),
        ValueError,
        "alpha has 2 per-class weights but the logits have 3",
    ),
    "class alpha entry out of range": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], alpha=[0.2, 0.8, 2.0]),
        ValueError,
        r"alpha\[2\] must lie in \[0, 1\]",
    ),
    "class alpha 0-d array": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], alpha=np.array(0.5)),
        TypeError,
        "alpha",
    ),
    "unknown reduction": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, reduction="avg"),
        ValueError,
        "reduction must be one of",
    ),
    "reduction not a string": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], reduction=None),
        TypeError,
        "reduction must be one of",
    ),
    "axis out of range": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], axis=2),
        ValueError,
        "axis=2 is out of range",
    ),
    "axis not an int": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], axis=1.0),
        TypeError,
        "axis must be an int",
    ),
    "softmax of 0-d logits": (
        lambda: focal_ref.softmax_focal_loss(1.0, 0),
        ValueError,
        "logits must have a class axis",
    ),
    "logits inf": (
        lambda: focal_ref.sigmoid_focal_loss([0.0, np.inf], [1.0, 0.0]),
        ValueError,
        "logits must be finite",
    ),
    "logits NaN": (
        lambda: focal_ref.softmax_focal_loss([[0.0, np.nan]], [0]),
        ValueError,
        "logits must be finite",
    ),
    "logits NaN (gradient)": (
        lambda: focal_ref.sigmoid_focal_loss_grad([np.nan], [1.0]),
        ValueError,
        "logits must be finite",
    ),
    "logits complex": (
        lambda: focal_ref.sigmoid_focal_loss([1j], [1.0]),
        TypeError,
        "logits must be an array of real numbers",
    ),
    "probs above 1": (
        lambda: focal_ref.binary_focal_loss([1.5], [1.0]),
        ValueError,
        r"probs must lie in \[0, 1\]",
    ),
    "probs negative": (
        lambda: focal_ref.categorical_focal_loss([[-0.1, 1.1]], [0]),
        ValueError,
        r"probs must lie in \[0, 1\]",
    ),
    "probs shape": (
        lambda: focal_ref.binary_focal_loss([0.5, 0.5], [1.0]),
        ValueError,
        "targets must have the shape of probs",
    ),
    "FL* gamma zero": (
        lambda: focal_ref.sigmoid_focal_loss_star(X3, Y3, gamma=0.0),
        ValueError,
        "gamma must be > 0",
    ),
    "FL* soft targets": (
        lambda: focal_ref.sigmoid_focal_loss_star(X3, [1.0, 0.5, 0.0]),
        ValueError,
        "targets must be hard labels",
    ),
    "FL* gradient soft targets": (
        lambda: focal_ref.sigmoid_focal_loss_star_grad(X3, [1.0, 0.5, 0.0]),
        ValueError,
        "targets must be hard labels",
    ),
    "FL* beta inf": (
        lambda: focal_ref.sigmoid_focal_loss_star(X3, Y3, beta=float("inf")),
        ValueError,
        "beta must be finite",
    ),
    "ignore_index with probabilities": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], ignore_index=-100),
        ValueError,
        "ignore_index applies only to integer",
    ),
    "ignore_index not an int": (
        lambda: focal_ref.softmax_focal_loss(ROWS, [0, 1], ignore_index=1.5),
        TypeError,
        "ignore_index must be an int",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input(case):
    call, error, message = BAD_INPUT[case]
    with pytest.raises(error, match=message):
        call()


# ----------------------------------------------------------------------------------------------
# regressions: faults of issue 16 at the edges, where the true value is finite (each failed before its fix)


def test_fl_star_finite_where_gamma_x_overflows():
    """x = -1e308 on a positive, gamma = 2: z = gamma x + beta overflows to -inf, but FL* = -x - beta/gamma
    = 1e308 (to the last bit: beta/gamma is far below its ulp). Was inf."""
    for gamma in (2.0, 4.0):
        out = focal_ref.sigmoid_focal_loss_star(
            [-1e308, 1e308], [1.0, 0.0], gamma=gamma, beta=1.0, alpha=None
        )
        np.testing.assert_array_equal(out, [1e308, 1e308])
    assert focal_ref.sigmoid_focal_loss_star(-1e308, 1.0, gamma=2.0, beta=1.0, alpha=0.25) == 0.25 * 1e308
    # below the overflow the plain path: gamma = 1.5 keeps z finite
    assert focal_ref.sigmoid_focal_loss_star(-1e308, 1.0, gamma=1.5, beta=0.0, alpha=None) == pytest.approx(
        1e308
    )
    assert focal_ref.sigmoid_focal_loss_star_grad(-1e308, 1.0, gamma=2.0, beta=1.0, alpha=None) == -1.0
    assert focal_ref.sigmoid_focal_loss_star_hess(-1e308, 1.0, gamma=2.0, beta=1.0, alpha=None) == 0.0


@pytest.mark.parametrize("gamma", [1e-12, 3e-9, 1e-8])
@pytest.mark.parametrize("beta", [100.0, 720.0, 740.0])
@pytest.mark.parametrize("x", [-50.0, -1.0, 0.0, 3.0])
def test_fl_star_small_gamma_large_beta(gamma, beta, x):
    """gamma <= 1e-8, beta >= 100: softplus(-z) ~ e^-z is subnormal for z > 708, and dividing it by a small
    gamma made a normal result out of a few significant bits (5% .. 2.3x off). Now exp(-z - log gamma)."""
    for y in (0.0, 1.0):
        out = focal_ref.sigmoid_focal_loss_star(x, y, gamma=gamma, beta=beta, alpha=0.25)
        assert mpr.relative_error(out, mpr.fl_star(x, y, 0.25, gamma, beta)) <= 1e-12
        hess = focal_ref.sigmoid_focal_loss_star_hess(x, y, gamma=gamma, beta=beta, alpha=0.25)
        assert mpr.relative_error(hess, mpr.fl_star_hess(x, y, 0.25, gamma, beta)) <= 1e-12


def test_tiny_soft_target_at_zero_probability_is_inf():
    """p = 0 with a soft target y = 1e-200: CE = -y log 0 = +inf and (1 - p_t)^gamma = y^gamma > 0
    underflows to 0;
    the loss is +inf, as the formula says. Was 0 * inf = NaN. The mirror case: p = 1, 1 - y tiny, gamma
    large."""
    assert focal_ref.binary_focal_loss(0.0, 1e-200, alpha=None, gamma=2.0) == math.inf
    assert focal_ref.binary_focal_loss(0.0, 5e-324, alpha=0.25, gamma=0.5) == math.inf
    assert focal_ref.binary_focal_loss(1.0, 1.0 - 2.0**-53, alpha=None, gamma=30.0) == math.inf
    assert focal_ref.binary_focal_loss([0.0, 0.5], [1e-200, 1.0], reduction="sum") == math.inf


def test_zero_losses_are_positive_zero():
    """alpha = 0 on a positive (alpha_t = 0): +0.0, never -0.0 (issue 16's small API edges; a property the
    reference already had, pinned here because the frameworks are tested against it bit for bit)."""
    for out in (
        focal_ref.sigmoid_focal_loss([3.0, -2.0], [1.0, 1.0], alpha=0.0),
        focal_ref.binary_focal_loss([0.3, 1.0], [1.0, 1.0], alpha=0.0),
        focal_ref.softmax_focal_loss([[1.0, 0.0]], [0], alpha=[0.0, 1.0]),
    ):
        assert np.all(out == 0.0) and not np.any(np.signbit(out))


# ----------------------------------------------------------------------------------------------
# public helpers (API decision 4)


def test_public_helpers_and_private_aliases():
    from focal_ref import _reference

    assert focal_ref.sigmoid_parts is _reference._sigmoid_parts
    assert focal_ref.log_softmax_parts is _reference._log_softmax_parts
    p, q, ce, m = focal_ref.sigmoid_parts([745.0, -745.0], [1.0, 1.0])
    assert q[0] == 5e-324 and p[1] == 5e-324 and ce[0] == 5e-324 and ce[1] == 745.0 and m[0] == q[0]
    log_p, u = focal_ref.log_softmax_parts([[0.0, 745.0], [40.0, 0.0]], axis=-1)
    assert u[0, 1] == 5e-324 and log_p[0, 1] == -5e-324 and u[1, 1] == 1.0
    log_p_0, u_0 = focal_ref.log_softmax_parts([[0.0, 40.0], [745.0, 0.0]], axis=0)
    np.testing.assert_array_equal(log_p_0, log_p.T)
    np.testing.assert_array_equal(u_0, u.T)


# ----------------------------------------------------------------------------------------------
# second derivatives: shapes, structure, finiteness, and against the gradient


def test_softmax_hessian_shape_axis_and_hvp():
    rng = np.random.default_rng(5)
    logits = rng.normal(0.0, 3.0, (2, 4, 3))
    index = rng.integers(0, 4, (2, 3))
    alpha = [0.1, 0.2, 0.3, 0.4]
    hess = focal_ref.softmax_focal_loss_hessian(logits, index, alpha=alpha, axis=1)
    assert hess.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(
        hess, focal_ref.softmax_focal_loss_hessian(np.moveaxis(logits, 1, -1), index, alpha=alpha)
    )
    np.testing.assert_allclose(hess, np.swapaxes(hess, -1, -2), rtol=0, atol=1e-15)
    v = rng.normal(size=logits.shape)
    hvp = focal_ref.softmax_focal_loss_hvp(logits, index, v, alpha=alpha, axis=1)
    assert hvp.shape == logits.shape
    expected = np.moveaxis(np.einsum("nhjk,nhk->nhj", hess, np.moveaxis(v, 1, -1)), -1, 1)
    np.testing.assert_allclose(hvp, expected, rtol=1e-13, atol=1e-15)
    assert focal_ref.softmax_focal_loss_hessian([0.0, 1.0, 2.0], 2).shape == (3, 3)
    with pytest.raises(ValueError, match="v must have the shape of logits"):
        focal_ref.softmax_focal_loss_hvp(logits, index, v[:1], axis=1)
    with pytest.raises(ValueError, match="v must be finite"):
        focal_ref.softmax_focal_loss_hvp([0.0, 1.0], 0, [np.nan, 0.0])


def test_softmax_hessian_of_ignored_samples_is_zero():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    hess = focal_ref.softmax_focal_loss_hessian(logits, [0, -100], ignore_index=-100)
    np.testing.assert_array_equal(hess[1], 0.0)
    np.testing.assert_array_equal(hess[0], focal_ref.softmax_focal_loss_hessian(logits[0], 0))
    hess = focal_ref.sigmoid_focal_loss_hess([1.0, 2.0], [-1.0, 1.0], ignore_index=-1)
    assert hess[0] == 0.0 and hess[1] == focal_ref.sigmoid_focal_loss_hess(2.0, 1.0)


@given(
    st.lists(st.tuples(st.floats(-100.0, 100.0), st.floats(-100.0, 100.0)), min_size=1, max_size=6), gammas
)
@example(pairs=[(0.0, 12.0)], gamma=0.1)  # the terms cancel to 7 digits
def test_two_class_softmax_hessian_is_sigmoid_hessian(pairs, gamma):
    """C = 2, hard labels: FL(x0, x1) = FL_sigmoid(x1 - x0), so H = h [[1, -1], [-1, 1]]."""
    logits = np.array(pairs)
    index = (np.arange(len(pairs)) % 2).astype(int)
    h = focal_ref.sigmoid_focal_loss_hess(
        logits[:, 1] - logits[:, 0], index.astype(float), alpha=None, gamma=gamma
    )
    hess = focal_ref.softmax_focal_loss_hessian(logits, index, gamma=gamma)
    expected = h[:, None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
    # relative to the sum of the Hessian's terms (mp_reference's scale, the reference's accuracy
    # contract): where they cancel (x0 = 0, x1 = 12, label 0, gamma 0.1: 7 digits) the two closed
    # forms each carry REFERENCE["hess"]-sized errors relative to |h| itself
    scale = [
        float(mpr.sigmoid_fl_hess(z, float(t), None, gamma)[1])
        for z, t in zip(logits[:, 1] - logits[:, 0], index, strict=True)
    ]
    assert_close(hess, expected, 1e-12, np.array(scale)[:, None, None])


@given(sigmoid_inputs(logits=st.floats(-30.0, 30.0)), binary_alpha, gammas)
def test_sigmoid_hess_is_derivative_of_grad(inputs, alpha, gamma):
    """A central difference of the reference gradient (step 1e-5: error ~ 1e-10 of the third derivative)."""
    x, y = inputs
    step = 1e-5
    numeric = (
        focal_ref.sigmoid_focal_loss_grad(x + step, y, alpha=alpha, gamma=gamma)
        - focal_ref.sigmoid_focal_loss_grad(x - step, y, alpha=alpha, gamma=gamma)
    ) / (2 * step)
    hess = focal_ref.sigmoid_focal_loss_hess(x, y, alpha=alpha, gamma=gamma)
    assert np.all(np.abs(hess - numeric) <= 1e-6 * (1.0 + gamma) ** 2)


@given(
    x=st.lists(finite_floats, min_size=1, max_size=8),
    data=st.data(),
    gamma=st.sampled_from(APPENDIX_GAMMAS + (1.5, 1.9, 5.0, 8.0)),
    alpha=st.sampled_from([None, 0.0, 0.25, 1.0]),
)
def test_sigmoid_hess_finite_for_every_finite_logit(x, data, gamma, alpha):
    """No NaN or inf for any finite logit, any target in [0, 1], gamma < 1 and < 2 included (no
    m^(gamma-2))."""
    y = data.draw(
        st.lists(
            st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0])), min_size=len(x), max_size=len(x)
        )
    )
    assert np.all(np.isfinite(focal_ref.sigmoid_focal_loss_hess(x, y, alpha=alpha, gamma=gamma)))
    hard = np.round(y)
    for g in (max(gamma, 1e-9), 2.0):
        assert np.all(
            np.isfinite(focal_ref.sigmoid_focal_loss_star_hess(x, hard, gamma=g, beta=1.0, alpha=alpha))
        )
        assert np.all(np.isfinite(focal_ref.sigmoid_focal_loss_star(x, hard, gamma=g, beta=1.0, alpha=alpha)))


@given(
    rows=st.integers(1, 4).flatmap(
        lambda c: st.lists(st.lists(finite_floats, min_size=c, max_size=c), min_size=1, max_size=3)
    ),
    data=st.data(),
    gamma=st.sampled_from(APPENDIX_GAMMAS + (1.5, 5.0)),
)
def test_softmax_hessian_finite_for_every_finite_logit(rows, data, gamma):
    """Also when the logits of a row are farther apart than the float64 range, and for a single class."""
    logits = np.array(rows)
    n, c = logits.shape
    index = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    assert np.all(np.isfinite(focal_ref.softmax_focal_loss_hessian(logits, index, gamma=gamma)))
    soft = np.array(
        data.draw(st.lists(st.lists(st.floats(0.0, 1.0), min_size=c, max_size=c), min_size=n, max_size=n))
    )
    assert np.all(np.isfinite(focal_ref.softmax_focal_loss_hessian(logits, soft, gamma=gamma, alpha=0.5)))
    assert np.all(
        np.isfinite(focal_ref.softmax_focal_loss_hvp(logits, soft, np.ones_like(logits), gamma=gamma))
    )


@given(softmax_inputs(), gammas)
def test_softmax_hessian_is_derivative_of_grad(inputs, gamma):
    """Column l of H is the derivative of the reference gradient along x_l (central difference, step 1e-5)."""
    x, y, alpha = inputs
    hess = focal_ref.softmax_focal_loss_hessian(x, y, alpha=alpha, gamma=gamma)
    step = 1e-5
    for col in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, col] = step
        numeric = (
            focal_ref.softmax_focal_loss_grad(x + e, y, alpha=alpha, gamma=gamma)
            - focal_ref.softmax_focal_loss_grad(x - e, y, alpha=alpha, gamma=gamma)
        ) / (2 * step)
        assert np.all(np.abs(hess[:, :, col] - numeric) <= 1e-6 * (1.0 + gamma) ** 2 * (1 + x.shape[1]))


# ----------------------------------------------------------------------------------------------
# issue 13: weight, pos_weight and ignore_index on the sigmoid family (API decision 2)


def test_weight_multiplies_each_element_and_broadcasts():
    x = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]])
    y = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 1.0]])
    w = np.array([0.0, 2.0, 0.5])  # per class, broadcast over rows
    base = focal_ref.sigmoid_focal_loss(x, y)
    np.testing.assert_array_equal(focal_ref.sigmoid_focal_loss(x, y, weight=w), base * w)
    np.testing.assert_array_equal(
        focal_ref.sigmoid_focal_loss_grad(x, y, weight=w), focal_ref.sigmoid_focal_loss_grad(x, y) * w
    )
    np.testing.assert_array_equal(
        focal_ref.sigmoid_focal_loss_hess(x, y, weight=w), focal_ref.sigmoid_focal_loss_hess(x, y) * w
    )
    # "mean" stays unweighted in the count: sum_i w_i FL_i / N
    assert focal_ref.sigmoid_focal_loss(x, y, weight=w, reduction="mean") == pytest.approx(
        (base * w).sum() / 6, rel=1e-15
    )
    p = expit(x)
    np.testing.assert_allclose(
        focal_ref.binary_focal_loss(p, y, weight=w), focal_ref.binary_focal_loss(p, y) * w, rtol=1e-15
    )
    # a zero weight on an infinite loss leaves the element out
    assert focal_ref.binary_focal_loss([0.0, 0.5], [1.0, 1.0], weight=[0.0, 1.0]).tolist()[0] == 0.0


def test_pos_weight_is_bce_with_logits_pos_weight():
    """CE = -[pw y log p + (1-y) log(1-p)] inside the focal form; for hard labels this is kornia's
    binary focal loss with pos_weight: -alpha_t (1-p_t)^gamma [pw y log p + (1-y) log(1-p)]."""
    x = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]])
    y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    pw = np.array([1.0, 3.0, 0.5])
    p = expit(x)
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, 0.25, 0.75)
    expected = -alpha_t * (1 - p_t) ** 2 * (pw * y * np.log(p) + (1 - y) * np.log1p(-p))
    assert_close(focal_ref.sigmoid_focal_loss(x, y, pos_weight=pw), expected, 1e-14)
    assert_close(focal_ref.binary_focal_loss(p, y, pos_weight=pw), expected, 1e-14)
    np.testing.assert_array_equal(
        focal_ref.sigmoid_focal_loss(x, y, pos_weight=1.0), focal_ref.sigmoid_focal_loss(x, y)
    )
    # negatives do not see pos_weight
    negatives = y == 0
    np.testing.assert_array_equal(
        focal_ref.sigmoid_focal_loss(x, y, pos_weight=7.0)[negatives],
        focal_ref.sigmoid_focal_loss(x, y)[negatives],
    )


def test_sigmoid_ignore_index():
    """Ignored elements give 0 (loss, gradient, second derivative) and leave the mean's count; all ignored
    gives a mean of 0.0. RetinaNet's IoU band: targets -1 between the IoU thresholds."""
    x = np.array([2.0, -1.0, 0.5, 3.0])
    t = np.array([1.0, -1.0, 0.0, -1.0])
    kept = focal_ref.sigmoid_focal_loss(x[[0, 2]], t[[0, 2]])
    none = focal_ref.sigmoid_focal_loss(x, t, ignore_index=-1)
    np.testing.assert_array_equal(none, [kept[0], 0.0, kept[1], 0.0])
    assert focal_ref.sigmoid_focal_loss(x, t, ignore_index=-1, reduction="mean") == kept.sum() / 2
    assert focal_ref.sigmoid_focal_loss(x, t, ignore_index=-1, reduction="sum") == kept.sum()
    np.testing.assert_array_equal(focal_ref.sigmoid_focal_loss_grad(x, t, ignore_index=-1)[[1, 3]], 0.0)
    assert focal_ref.binary_focal_loss(expit(x), t, ignore_index=-1, reduction="mean") == pytest.approx(
        kept.sum() / 2, rel=1e-13
    )
    all_ignored = focal_ref.sigmoid_focal_loss(x, np.full(4, -1.0), ignore_index=-1, reduction="mean")
    assert all_ignored == 0.0 and np.ndim(all_ignored) == 0
    # weights and the ignore mask together: mean = sum_i w_i FL_i / N_kept
    w = np.array([2.0, 5.0, 0.5, 1.0])
    assert focal_ref.sigmoid_focal_loss(x, t, weight=w, ignore_index=-1, reduction="mean") == pytest.approx(
        (kept * w[[0, 2]]).sum() / 2, rel=1e-15
    )
    # any number outside [0, 1] can mark the ignored elements
    np.testing.assert_array_equal(
        focal_ref.sigmoid_focal_loss(x, np.where(t == -1, 2.5, t), ignore_index=2.5), none
    )


BAD_INPUT_13 = {
    "ignore_index inside [0, 1]": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, ignore_index=0.5),
        ValueError,
        r"ignore_index must be a finite number outside \[0, 1\]",
    ),
    "ignore_index NaN": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, ignore_index=float("nan")),
        ValueError,
        "ignore_index must be a finite number",
    ),
    "ignore_index not a number": (
        lambda: focal_ref.sigmoid_focal_loss_grad(X3, Y3, ignore_index="-1"),
        TypeError,
        "ignore_index must be a real number",
    ),
    "target not ignore_index and out of range": (
        lambda: focal_ref.sigmoid_focal_loss(X3, [1.0, -2.0, 0.0], ignore_index=-1),
        ValueError,
        r"targets must lie in \[0, 1\]",
    ),
    "weight negative": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, weight=[1.0, -1.0, 1.0]),
        ValueError,
        "weight must be finite and >= 0",
    ),
    "weight NaN": (
        lambda: focal_ref.binary_focal_loss([0.5], [1.0], weight=[np.nan]),
        ValueError,
        "weight must be finite",
    ),
    "weight shape": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, weight=[1.0, 2.0]),
        ValueError,
        "weight of shape .* does not broadcast",
    ),
    "weight grows the shape": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, weight=np.ones((2, 3))),
        ValueError,
        "weight of shape",
    ),
    "pos_weight negative": (
        lambda: focal_ref.sigmoid_focal_loss_hess(X3, Y3, pos_weight=-1.0),
        ValueError,
        "pos_weight must be finite and >= 0",
    ),
    "pos_weight not a number": (
        lambda: focal_ref.sigmoid_focal_loss(X3, Y3, pos_weight="2"),
        TypeError,
        "pos_weight must be an array of real numbers",
    ),
    "hessian v shape": (
        lambda: focal_ref.softmax_focal_loss_hvp(ROWS, [0, 1], [0.0, 1.0]),
        ValueError,
        "v must have the shape of logits",
    ),
    "FL* hessian gamma zero": (
        lambda: focal_ref.sigmoid_focal_loss_star_hess(X3, Y3, gamma=0.0),
        ValueError,
        "gamma must be > 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT_13))
def test_bad_input_issue_13(case):
    call, error, message = BAD_INPUT_13[case]
    with pytest.raises(error, match=message):
        call()


def test_probability_gradients_finite_where_true_value_is():
    """d FL / dp at a subnormal p: finite where the true value is (alpha_t / p with alpha_t = .25 stays below
    the float64 range for p >= 1.4e-309), the rounded infinity where it is not; gamma < 1 at p_t -> 1 is
    finite (no (1-p_t)^(gamma-1)). The issue saw -inf from the frameworks' autograd at subnormal p."""
    g = focal_ref.binary_focal_loss_grad(
        [2e-308, 4e-309, 1e-310, 1.0 - 2.0**-53], [1.0, 1.0, 1.0, 1.0], gamma=0.5
    )
    assert mpr.relative_error(g[0], mpr.binary_fl_grad(2e-308, 1.0, 0.25, 0.5)[0]) <= 1e-14
    assert mpr.relative_error(g[1], mpr.binary_fl_grad(4e-309, 1.0, 0.25, 0.5)[0]) <= 1e-14
    assert g[2] == -math.inf and np.isfinite(g[3])
    c = focal_ref.categorical_focal_loss_grad(
        [[4e-309, 1.0 - 4e-309], [1.0, 0.0]], [0, 0], alpha=0.25, gamma=0.5
    )
    assert np.isfinite(c[0, 0]) and c[0, 1] == 0.0 and np.isfinite(c[1, 0])
    assert mpr.relative_error(c[0, 0], mpr.categorical_fl_grad([4e-309, 1.0], 0, 0.25, 0.5)[0]) <= 1e-14
    # p = 0 on a weighted positive: the loss is +inf, its derivative -inf (not NaN), also for a tiny soft
    # target
    assert focal_ref.binary_focal_loss_grad([0.0, 0.0], [1.0, 1e-200], alpha=None).tolist() == [
        -math.inf,
        -math.inf,
    ]
    assert focal_ref.binary_focal_loss_grad(1.0, 0.0, alpha=None) == math.inf
    assert focal_ref.binary_focal_loss_grad(1.0, 0.0, alpha=1.0) == 0.0  # weighted by 0
