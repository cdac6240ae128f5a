"""The reference against mpmath on the shared battery: the worst error per function.

Run ``python tests/report_accuracy.py`` to print the table (it takes a few seconds). tests/test_reference.py
asserts the same numbers: the bounds of ``tolerances.REFERENCE`` (losses 1e-12, gradients 1e-10, second
derivatives 1e-9). The ``[weights]`` rows add issue 13's ``weight``, ``pos_weight`` and ``ignore_index``.
A Hessian's scale is the largest |entry| of the true per-sample Hessian (softmax) or the sum of the
|chain-rule terms| (elementwise); a Hessian-vector product's is max|H| * sum|v|.

Errors are |computed - true| / max(scale, 2.2e-308) (see ``mp_reference.relative_error``): scale is |true|
for a loss; for a softmax gradient it is the row's largest |component|; for an elementwise sigmoid
gradient it is |first| + |second| of its two chain-rule terms (equal to |true| for hard labels, where both
terms have the same sign; for soft labels the derivative crosses 0, where no relative error is possible).
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np
from scipy.special import expit
from scipy.special import softmax as np_softmax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mp_reference as mpr  # noqa: E402
from cases import ALPHAS, GAMMAS, sigmoid_cases, softmax_cases  # noqa: E402
from tolerances import REFERENCE  # noqa: E402

import focal_ref  # noqa: E402

ACC_GAMMAS = GAMMAS + (
    0.1,
    8.0,
)  # the shared gammas, plus the ends of the range the issue asks for: gamma in [0, 8]
CLASS_ALPHAS = (None, 0.25, (0.1, 0.3, 0.5, 0.7, 1.0))
STAR_PARAMS = (
    (0.5, 0.0),
    (1.0, 1.0),
    (2.0, 1.0),
    (4.0, 0.0),
    (5.0, -1.0),
)  # (gamma, beta); Table 3 uses (2, 1), (4, 0)


def _groups(n: int, g: int, options):
    """Split case indices 0..n-1 among ``options``, case i going to option (i + g) % len(options)."""
    index = np.arange(n)
    return [(option, index[(index + g) % len(options) == o]) for o, option in enumerate(options)]


def _sigmoid_battery():
    """(x, y, alpha, gamma) arrays: every case for every gamma; alpha cycles through ALPHAS."""
    logits, targets = sigmoid_cases()
    for g, gamma in enumerate(ACC_GAMMAS):
        for alpha, i in _groups(logits.size, g, ALPHAS):
            yield logits[i], targets[i], alpha, gamma


def _binary_battery():
    """(p, y, alpha, gamma): probabilities of the battery's logits, plus exact 0, 1 and values next to
    them."""
    logits, targets = sigmoid_cases()
    probs = np.concatenate([expit(logits), [0.0, 1.0, 5e-324, 1e-300, 0.5, 1.0 - 2.0**-53, 2.0**-60]])
    ys = np.concatenate([targets, [0.0, 1.0, 1.0, 1.0, 0.3, 0.0, 1e-12]])
    for g, gamma in enumerate(ACC_GAMMAS):
        for alpha, i in _groups(probs.size, g, ALPHAS):
            yield probs[i], ys[i], alpha, gamma


def _star_battery():
    """(x, y, alpha, gamma, beta): the battery's logits with alternating hard labels."""
    logits, _ = sigmoid_cases()
    for k, (gamma, beta) in enumerate(STAR_PARAMS):
        hard = (np.arange(logits.size) + k) % 2.0
        for alpha, i in _groups(logits.size, k, ALPHAS):
            yield logits[i], hard[i], alpha, gamma, beta


def _softmax_targets():
    """(logits (N, C), targets): the rows with their index targets, and again with soft targets, including
    targets next to one-hot (1 - 1e-12 and 1e-12) on the saturated and tied rows."""
    logits, index, soft = softmax_cases()
    near = np.zeros(logits.shape[1])
    near[0], near[1] = 1.0 - 1e-12, 1e-12  # soft labels next to 1 and 0
    extreme = logits[-9:]  # the saturated and tied rows
    soft_logits = np.concatenate([logits, extreme, extreme])
    soft_targets = np.concatenate([soft, np.tile(near, (9, 1)), np.tile(near[::-1], (9, 1))])
    return [(logits, index), (soft_logits, soft_targets)]


def _softmax_battery():
    for g, gamma in enumerate(ACC_GAMMAS):
        for logits, targets in _softmax_targets():
            for alpha, i in _groups(len(logits), g, CLASS_ALPHAS):
                yield logits[i], targets[i], alpha, gamma


def _categorical_battery():
    """Probability rows: softmax of the logit rows, plus rows with exact 0 and 1 entries."""
    extra = np.array(
        [[1.0, 0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0], [1.0 - 2.0**-53, 2.0**-54, 2.0**-54, 0.0, 0.0]]
    )
    (logits, index), (soft_logits, soft_targets) = _softmax_targets()
    batteries = [
        (np.concatenate([np_softmax(logits, axis=-1), extra]), np.concatenate([index, [0, 1, 3]])),
        (np.concatenate([np_softmax(soft_logits, axis=-1), extra]), np.concatenate([soft_targets, extra])),
    ]
    for g, gamma in enumerate(ACC_GAMMAS):
        for probs, targets in batteries:
            for alpha, i in _groups(len(probs), g, CLASS_ALPHAS):
                yield probs[i], targets[i], alpha, gamma


def _alpha_arg(alpha):
    return list(alpha) if isinstance(alpha, tuple) else alpha


class _Errors:
    """Errors of one function: one per case, and whether the case fell back to the absolute test."""

    def __init__(self):
        self.errors, self.absolute = [], []

    def add(self, computed, true, scale=None):
        scale = abs(true) if scale is None else scale
        self.errors.append(mpr.relative_error(computed, true, scale))
        self.absolute.append(bool(scale < mpr.TINY))

    def result(self):
        return np.array(self.errors), np.array(self.absolute)


@functools.cache
def _sigmoid_errors():
    loss, grad = _Errors(), _Errors()
    for x, y, alpha, gamma in _sigmoid_battery():
        ref_loss = focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
        ref_grad = focal_ref.sigmoid_focal_loss_grad(x, y, alpha=alpha, gamma=gamma)
        for xi, yi, li, gi in zip(x, y, ref_loss, ref_grad, strict=False):
            loss.add(li, mpr.sigmoid_fl(xi, yi, alpha, gamma))
            grad.add(gi, *mpr.sigmoid_fl_grad(xi, yi, alpha, gamma))
    return {"sigmoid_focal_loss": loss.result(), "sigmoid_focal_loss_grad": grad.result()}


@functools.cache
def _sigmoid_hess_errors():
    hess = _Errors()
    for x, y, alpha, gamma in _sigmoid_battery():
        ref_hess = focal_ref.sigmoid_focal_loss_hess(x, y, alpha=alpha, gamma=gamma)
        for xi, yi, hi in zip(x, y, ref_hess, strict=False):
            hess.add(hi, *mpr.sigmoid_fl_hess(xi, yi, alpha, gamma))
    return {"sigmoid_focal_loss_hess": hess.result()}


def _weighted_battery():
    """The sigmoid battery with issue 13's arguments: per-element weights (zeros included), a pos_weight per
    element (0, 1 and up to 100) and targets replaced by ignore_index = -1 on every seventh element."""
    rng = np.random.default_rng(13)
    for x, y, alpha, gamma in _sigmoid_battery():
        weight = rng.choice([0.0, 0.5, 1.0, 3.0], x.size)
        pos_weight = rng.choice([0.0, 1.0, 2.5, 100.0], x.size)
        targets = np.where(np.arange(x.size) % 7 == 3, -1.0, y)
        yield x, targets, alpha, gamma, weight, pos_weight


@functools.cache
def _weighted_errors():
    """sigmoid loss, gradient and second derivative with weight, pos_weight and ignore_index against the
    oracle
    (w_i * FL_i(pos_weight), 0 where ignored); binary_focal_loss on sigma(x) of the moderate logits."""
    loss, grad, hess, binary = _Errors(), _Errors(), _Errors(), _Errors()
    for x, t, alpha, gamma, weight, pos_weight in _weighted_battery():
        kw = dict(alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight, ignore_index=-1.0)
        ref_loss = focal_ref.sigmoid_focal_loss(x, t, **kw)
        ref_grad = focal_ref.sigmoid_focal_loss_grad(x, t, **kw)
        ref_hess = focal_ref.sigmoid_focal_loss_hess(x, t, **kw)
        probs = expit(x)
        ref_binary = focal_ref.binary_focal_loss(probs, t, **kw)
        for i in range(x.size):
            if t[i] == -1.0:
                for e, value in ((loss, ref_loss), (grad, ref_grad), (hess, ref_hess), (binary, ref_binary)):
                    e.add(value[i], 0.0, 1.0)  # ignored: exactly 0
                continue
            w, pw = weight[i], pos_weight[i]
            loss.add(ref_loss[i], w * mpr.sigmoid_fl(x[i], t[i], alpha, gamma, pw))
            g, g_scale = mpr.sigmoid_fl_grad(x[i], t[i], alpha, gamma, pw)
            grad.add(ref_grad[i], w * g, w * g_scale)
            h, h_scale = mpr.sigmoid_fl_hess(x[i], t[i], alpha, gamma, pw)
            hess.add(ref_hess[i], w * h, w * h_scale)
            # a zero weight leaves the element out, also where its loss is +inf (0 * inf = 0, as xlogy)
            binary.add(ref_binary[i], w * mpr.binary_fl(probs[i], t[i], alpha, gamma, pw) if w else 0.0)
    return {
        "sigmoid_focal_loss[weights]": loss.result(),
        "sigmoid_focal_loss_grad[weights]": grad.result(),
        "sigmoid_focal_loss_hess[weights]": hess.result(),
        "binary_focal_loss[weights]": binary.result(),
    }


@functools.cache
def _binary_errors():
    """The loss, and its derivative with respect to p (true values beyond the float64 range, 1/p at a
    subnormal p, must come out as the infinity they round to)."""
    loss, grad = _Errors(), _Errors()
    for p, y, alpha, gamma in _binary_battery():
        ref_loss = focal_ref.binary_focal_loss(p, y, alpha=alpha, gamma=gamma)
        ref_grad = focal_ref.binary_focal_loss_grad(p, y, alpha=alpha, gamma=gamma)
        for pi, yi, li, gi in zip(p, y, ref_loss, ref_grad, strict=True):
            loss.add(li, mpr.binary_fl(pi, yi, alpha, gamma))
            true, scale = mpr.binary_fl_grad(pi, yi, alpha, gamma)
            true = mpr.rounded_overflow(true)
            grad.add(gi, true, 1.0 if mpr.mp.isinf(true) else scale)
    return {"binary_focal_loss": loss.result(), "binary_focal_loss_grad": grad.result()}


@functools.cache
def _star_errors():
    loss, grad = _Errors(), _Errors()
    for x, y, alpha, gamma, beta in _star_battery():
        ref_loss = focal_ref.sigmoid_focal_loss_star(x, y, alpha=alpha, gamma=gamma, beta=beta)
        ref_grad = focal_ref.sigmoid_focal_loss_star_grad(x, y, alpha=alpha, gamma=gamma, beta=beta)
        for xi, yi, li, gi in zip(x, y, ref_loss, ref_grad, strict=False):
            loss.add(li, mpr.fl_star(xi, yi, alpha, gamma, beta))
            grad.add(gi, mpr.fl_star_grad(xi, yi, alpha, gamma, beta))
    return {"sigmoid_focal_loss_star": loss.result(), "sigmoid_focal_loss_star_grad": grad.result()}


@functools.cache
def _star_hess_errors():
    hess = _Errors()
    for x, y, alpha, gamma, beta in _star_battery():
        ref_hess = focal_ref.sigmoid_focal_loss_star_hess(x, y, alpha=alpha, gamma=gamma, beta=beta)
        for xi, yi, hi in zip(x, y, ref_hess, strict=False):
            hess.add(hi, mpr.fl_star_hess(xi, yi, alpha, gamma, beta))
    return {"sigmoid_focal_loss_star_hess": hess.result()}


def _hessian_battery():
    """The softmax battery at the gammas that matter most for second derivatives (0, between 0 and 1, 1,
    2, 8):
    the mpmath Hessian costs C^3 high-precision terms per row, so every third random row is kept."""
    for logits, targets, alpha, gamma in _softmax_battery():
        if gamma not in (0.0, 0.1, 0.5, 1.0, 2.0, 8.0):
            continue
        keep = [
            i
            for i in range(len(logits))
            if i % 3 == 0 or np.ptp(logits[i]) in (0.0, 17.0, 40.0, 100.0, 745.0) or i >= len(logits) - 20
        ]
        yield logits[keep], targets[keep], alpha, gamma


@functools.cache
def _softmax_hessian_errors():
    """Per row: the worst entry of the Hessian relative to the largest |entry| of the true Hessian (as for the
    gradient), and the worst Hessian-vector product component relative to max|H| * sum|v|."""
    hess, hvp = _Errors(), _Errors()
    rng = np.random.default_rng(16)
    for logits, targets, alpha, gamma in _hessian_battery():
        kwargs = dict(alpha=_alpha_arg(alpha), gamma=gamma)
        ref_hess = focal_ref.softmax_focal_loss_hessian(logits, targets, **kwargs)
        v = rng.normal(size=logits.shape)
        ref_hvp = focal_ref.softmax_focal_loss_hvp(logits, targets, v, **kwargs)
        for row, target, h_row, hv_row, v_row in zip(logits, targets, ref_hess, ref_hvp, v, strict=False):
            true, _ = mpr.softmax_fl_hessian(row, target, alpha, gamma)
            c = len(row)
            scale = max(abs(true[j][k]) for j in range(c) for k in range(c))
            errors = [
                (mpr.relative_error(h_row[j, k], true[j][k], scale), j, k) for j in range(c) for k in range(c)
            ]
            _, j, k = max(errors)
            hess.add(h_row[j, k], true[j][k], scale)
            true_hv = [mpr.mp.fsum(true[j][k] * mpr.mpf(float(v_row[k])) for k in range(c)) for j in range(c)]
            hv_scale = scale * mpr.mpf(float(np.abs(v_row).sum()))
            j = max(range(c), key=lambda j: mpr.relative_error(hv_row[j], true_hv[j], hv_scale))
            hvp.add(hv_row[j], true_hv[j], hv_scale)
    return {"softmax_focal_loss_hessian": hess.result(), "softmax_focal_loss_hvp": hvp.result()}


@functools.cache
def _softmax_errors():
    loss, grad = _Errors(), _Errors()
    for logits, targets, alpha, gamma in _softmax_battery():
        kwargs = dict(alpha=_alpha_arg(alpha), gamma=gamma)
        ref_loss = focal_ref.softmax_focal_loss(logits, targets, **kwargs)
        ref_grad = focal_ref.softmax_focal_loss_grad(logits, targets, **kwargs)
        for row, target, li, grow in zip(logits, targets, ref_loss, ref_grad, strict=False):
            loss.add(li, mpr.softmax_fl(row, target, alpha, gamma))
            true = mpr.softmax_fl_grad(row, target, alpha, gamma)
            scale = max(abs(t) for t in true)  # the row's largest component
            worst = max(range(len(true)), key=lambda j: mpr.relative_error(grow[j], true[j], scale))
            grad.add(grow[worst], true[worst], scale)
    return {"softmax_focal_loss": loss.result(), "softmax_focal_loss_grad": grad.result()}


@functools.cache
def _categorical_errors():
    loss, grad = _Errors(), _Errors()
    for probs, targets, alpha, gamma in _categorical_battery():
        kwargs = dict(alpha=_alpha_arg(alpha), gamma=gamma)
        ref_loss = focal_ref.categorical_focal_loss(probs, targets, **kwargs)
        ref_grad = focal_ref.categorical_focal_loss_grad(probs, targets, **kwargs)
        for row, target, li, grow in zip(probs, targets, ref_loss, ref_grad, strict=True):
            loss.add(li, mpr.categorical_fl(row, target, alpha, gamma))
            true = [mpr.rounded_overflow(t) for t in mpr.categorical_fl_grad(row, target, alpha, gamma)]
            # each component is one class's two terms of one sign: relative to |true| itself
            worst = max(range(len(true)), key=lambda j: mpr.relative_error(grow[j], true[j]))
            grad.add(grow[worst], true[worst])
    return {"categorical_focal_loss": loss.result(), "categorical_focal_loss_grad": grad.result()}


_MEASURE = {
    "sigmoid_focal_loss": _sigmoid_errors,
    "sigmoid_focal_loss_grad": _sigmoid_errors,
    "sigmoid_focal_loss_hess": _sigmoid_hess_errors,
    "binary_focal_loss": _binary_errors,
    "binary_focal_loss_grad": _binary_errors,
    "sigmoid_focal_loss[weights]": _weighted_errors,
    "sigmoid_focal_loss_grad[weights]": _weighted_errors,
    "sigmoid_focal_loss_hess[weights]": _weighted_errors,
    "binary_focal_loss[weights]": _weighted_errors,
    "sigmoid_focal_loss_star": _star_errors,
    "sigmoid_focal_loss_star_grad": _star_errors,
    "sigmoid_focal_loss_star_hess": _star_hess_errors,
    "softmax_focal_loss": _softmax_errors,
    "softmax_focal_loss_grad": _softmax_errors,
    "softmax_focal_loss_hessian": _softmax_hessian_errors,
    "softmax_focal_loss_hvp": _softmax_hessian_errors,
    "categorical_focal_loss": _categorical_errors,
    "categorical_focal_loss_grad": _categorical_errors,
}


def function_errors(name: str):
    """(errors, absolute) of one reference function: one error per case (a row for the softmax functions),
    and whether that case fell back to the absolute test (see the module doc)."""
    return _MEASURE[name]()[name]


def accuracy_errors():
    """{function name: (errors, absolute)} for every function."""
    return {name: function_errors(name) for name in _MEASURE}


def _kind(name: str) -> str:
    base = name.split("[")[0]
    if base.endswith("_grad"):
        return "grad"
    if base.endswith(("_hess", "_hessian", "_hvp")):
        return "hess"
    return "loss"


TOLERANCES = {name: REFERENCE[_kind(name)] for name in _MEASURE}


def main():
    print(
        "float64 reference vs mpmath (60 digits after cancellation); error = |ref - true| / max(scale, "
        "2.2e-308)"
    )
    print(
        "below 2.2e-308 the test is absolute; its worst error is also shown in units of 2**-1074 "
        "(subnormal ulp)"
    )
    print(
        f"{'function':<34} {'cases':>6} {'worst error':>12} {'tolerance':>10} "
        f"{'abs. cases':>11} {'worst abs':>10}"
    )
    for name, (errors, absolute) in accuracy_errors().items():
        # error * TINY / 2**-1074, as error * 2**52: TINY * error itself would underflow
        worst_abs = f"{errors[absolute].max() * 2.0**52:.2f}" if absolute.any() else "-"
        print(
            f"{name:<34} {errors.size:>6} {errors.max():>12.2e} {TOLERANCES[name]:>10.0e} "
            f"{int(absolute.sum()):>11} {worst_abs:>10}"
        )


if __name__ == "__main__":
    main()
