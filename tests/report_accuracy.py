"""The reference against mpmath on the shared battery: the worst error per function.

Run ``python tests/report_accuracy.py`` to print the table (it takes a few seconds). tests/test_reference.py
asserts the same numbers: losses <= 1e-12 relative, gradients <= 1e-10 relative to the largest component.

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

import focal_ref  # noqa: E402

ACC_GAMMAS = GAMMAS + (0.1, 8.0)  # the shared gammas, plus the ends of the range the issue asks for: gamma in [0, 8]
CLASS_ALPHAS = (None, 0.25, (0.1, 0.3, 0.5, 0.7, 1.0))
STAR_PARAMS = ((0.5, 0.0), (1.0, 1.0), (2.0, 1.0), (4.0, 0.0), (5.0, -1.0))  # (gamma, beta); Table 3 uses (2, 1), (4, 0)


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
    """(p, y, alpha, gamma): probabilities of the battery's logits, plus exact 0, 1 and values next to them."""
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
    extra = np.array([[1.0, 0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0],
                      [1.0 - 2.0**-53, 2.0**-54, 2.0**-54, 0.0, 0.0]])
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


@functools.lru_cache(maxsize=None)
def _sigmoid_errors():
    loss, grad = _Errors(), _Errors()
    for x, y, alpha, gamma in _sigmoid_battery():
        ref_loss = focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
        ref_grad = focal_ref.sigmoid_focal_loss_grad(x, y, alpha=alpha, gamma=gamma)
        for xi, yi, li, gi in zip(x, y, ref_loss, ref_grad):
            loss.add(li, mpr.sigmoid_fl(xi, yi, alpha, gamma))
            grad.add(gi, *mpr.sigmoid_fl_grad(xi, yi, alpha, gamma))
    return {"sigmoid_focal_loss": loss.result(), "sigmoid_focal_loss_grad": grad.result()}


@functools.lru_cache(maxsize=None)
def _binary_errors():
    loss = _Errors()
    for p, y, alpha, gamma in _binary_battery():
        for pi, yi, li in zip(p, y, focal_ref.binary_focal_loss(p, y, alpha=alpha, gamma=gamma)):
            loss.add(li, mpr.binary_fl(pi, yi, alpha, gamma))
    return {"binary_focal_loss": loss.result()}


@functools.lru_cache(maxsize=None)
def _star_errors():
    loss, grad = _Errors(), _Errors()
    for x, y, alpha, gamma, beta in _star_battery():
        ref_loss = focal_ref.sigmoid_focal_loss_star(x, y, alpha=alpha, gamma=gamma, beta=beta)
        ref_grad = focal_ref.sigmoid_focal_loss_star_grad(x, y, alpha=alpha, gamma=gamma, beta=beta)
        for xi, yi, li, gi in zip(x, y, ref_loss, ref_grad):
            loss.add(li, mpr.fl_star(xi, yi, alpha, gamma, beta))
            grad.add(gi, mpr.fl_star_grad(xi, yi, alpha, gamma, beta))
    return {"sigmoid_focal_loss_star": loss.result(), "sigmoid_focal_loss_star_grad": grad.result()}


@functools.lru_cache(maxsize=None)
def _softmax_errors():
    loss, grad = _Errors(), _Errors()
    for logits, targets, alpha, gamma in _softmax_battery():
        kwargs = dict(alpha=_alpha_arg(alpha), gamma=gamma)
        ref_loss = focal_ref.softmax_focal_loss(logits, targets, **kwargs)
        ref_grad = focal_ref.softmax_focal_loss_grad(logits, targets, **kwargs)
        for row, target, li, grow in zip(logits, targets, ref_loss, ref_grad):
            loss.add(li, mpr.softmax_fl(row, target, alpha, gamma))
            true = mpr.softmax_fl_grad(row, target, alpha, gamma)
            scale = max(abs(t) for t in true)  # the row's largest component
            worst = max(range(len(true)), key=lambda j: mpr.relative_error(grow[j], true[j], scale))
            grad.add(grow[worst], true[worst], scale)
    return {"softmax_focal_loss": loss.result(), "softmax_focal_loss_grad": grad.result()}


@functools.lru_cache(maxsize=None)
def _categorical_errors():
    loss = _Errors()
    for probs, targets, alpha, gamma in _categorical_battery():
        ref_loss = focal_ref.categorical_focal_loss(probs, targets, alpha=_alpha_arg(alpha), gamma=gamma)
        for row, target, li in zip(probs, targets, ref_loss):
            loss.add(li, mpr.categorical_fl(row, target, alpha, gamma))
    return {"categorical_focal_loss": loss.result()}


_MEASURE = {
    "sigmoid_focal_loss": _sigmoid_errors,
    "sigmoid_focal_loss_grad": _sigmoid_errors,
    "binary_focal_loss": _binary_errors,
    "sigmoid_focal_loss_star": _star_errors,
    "sigmoid_focal_loss_star_grad": _star_errors,
    "softmax_focal_loss": _softmax_errors,
    "softmax_focal_loss_grad": _softmax_errors,
    "categorical_focal_loss": _categorical_errors,
}


def function_errors(name: str):
    """(errors, absolute) of one reference function: one error per case (a row for the softmax functions),
    and whether that case fell back to the absolute test (see the module doc)."""
    return _MEASURE[name]()[name]


def accuracy_errors():
    """{function name: (errors, absolute)} for every function."""
    return {name: function_errors(name) for name in _MEASURE}


TOLERANCES = {name: 1e-10 if name.endswith("_grad") else 1e-12 for name in _MEASURE}


def main():
    print("float64 reference vs mpmath (60 digits after cancellation); error = |ref - true| / max(scale, 2.2e-308)")
    print("below 2.2e-308 the test is absolute; its worst error is also shown in units of 2**-1074 (subnormal ulp)")
    print(f"{'function':<30} {'cases':>6} {'worst error':>12} {'tolerance':>10} {'abs. cases':>11} {'worst abs':>10}")
    for name, (errors, absolute) in accuracy_errors().items():
        # error * TINY / 2**-1074, as error * 2**52: TINY * error itself would underflow
        worst_abs = f"{errors[absolute].max() * 2.0**52:.2f}" if absolute.any() else "-"
        print(f"{name:<30} {errors.size:>6} {errors.max():>12.2e} {TOLERANCES[name]:>10.0e} "
              f"{int(absolute.sum()):>11} {worst_abs:>10}")


if __name__ == "__main__":
    main()
