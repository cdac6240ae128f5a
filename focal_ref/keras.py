"""Focal loss for Keras 3, written only with ``keras.ops`` (tested on the TensorFlow, PyTorch and JAX backends).

Functional versions with the reference's names, argument order and conventions (see
:mod:`focal_ref._reference`; ``alpha`` weights the positive class, softmax class axis ``axis=-1``,
reductions ``"none"``/``"mean"``/``"sum"``), and three ``keras.losses.Loss`` classes in Keras style.

Numerics mirror the reference: log space throughout (softplus, log-softmax with the dominant class's
log p written with log1p), 1 - p never formed by subtraction, nothing clipped. Autodiff through these
functions gives finite gradients for every finite logit and every gamma >= 0, gamma < 1 included.

dtypes: float16/bfloat16 inputs are computed in float32 inside and the result is cast back to the
input dtype; float32/float64 are computed as given; integer or bool inputs are cast to ``keras.config.floatx()``.
On the JAX backend float64 needs JAX's x64 mode (``JAX_ENABLE_X64=1``); without it JAX itself stores
float64 input as float32, and everything is computed in float32. Python numbers and lists of floats are
converted to ``keras.config.floatx()`` on every backend (as Keras does), NumPy arrays keep their dtype.
``tf.Variable``, ``keras.Variable``, JAX arrays and torch tensors are accepted on their backend.

Upstream fault (Keras 3.15, torch backend): a Loss class built with ``dtype="float64"`` returns its
``"sum_over_batch_size"``/``"mean"`` reduction as float32, because Keras's reduction divides with
``ops.divide_no_nan``, which on the torch backend promotes float64 with a Python float to float32. The
per-sample values (``reduction="none"``) and ``"sum"`` stay float64; TensorFlow and JAX keep float64.

Second derivatives: the focal factor (1 - p_t)^gamma is taken with its logarithm computed from the logits
in log space (softplus, log-softmax), so autodiff of every order (nested GradientTape, double backward,
``jax.hessian``, forward mode) stays finite at saturated logits and for every gamma >= 0. The
probability-input losses take integer gamma as products; for non-integer gamma in float32 their gradient
at an easy example loses the term gamma m^(gamma-1) CE once m^gamma CE (about p^(gamma+1) for a negative
of probability p) falls below float32's smallest normal number (1.2e-38).

Where the logits' spread exceeds the dtype's range (|x_i - x_j| > 3.4e38 in float32) the softmax loss is
inf, the rounded true value, and its gradient is not finite; every other finite input gives finite values.

Validation: hyperparameters and shapes are checked eagerly (no device sync), with the shared
:mod:`focal_ref._checks`. Checks that must read tensor values (finite logits, targets in range, class
indices in range) need a sync and run only with ``validate=True`` (eager tensors only).

Keras-style classes and the reference's reductions
---------------------------------------------------
Each class's ``call`` returns one value per sample, as Keras's own losses do, and Keras's reduction
(default ``"sum_over_batch_size"``: the sum divided by the number of per-sample values) is applied on top:

* :class:`BinaryFocalLoss` returns the elementwise loss averaged over the last axis (as
  ``keras.losses.BinaryCrossentropy`` does). So ``"sum_over_batch_size"`` (or ``"mean"``) equals the
  reference's ``reduction="mean"`` over all elements, and ``"sum"`` equals the reference's
  ``reduction="sum"`` divided by the size of the last axis. Shapes follow Keras's
  ``squeeze_or_expand_to_same_rank``: labels of shape ``(n,)`` with predictions of shape ``(n, 1)`` (a
  ``Dense(1)`` output) are n samples, so ``sample_weight``, ``class_weight`` and ``reduction`` act per
  sample exactly as in ``keras.losses.BinaryFocalCrossentropy``; a rank-1 pair ``(n,)``, ``(n,)`` is one
  sample of n labels, as in Keras.
* :class:`CategoricalFocalLoss` and :class:`SparseCategoricalFocalLoss` return the reference's per-sample
  values, so ``"sum_over_batch_size"`` equals the reference's ``"mean"`` and ``"sum"`` its ``"sum"``.
  With ``ignore_index`` the ignored samples give 0 and are left out of the ``"sum_over_batch_size"`` /
  ``"mean"`` denominator, as in the reference (and as ``ignore_class`` does in Keras).

Defaults follow the reference, not Keras's built-ins: ``alpha=0.25`` always weights positives in
:class:`BinaryFocalLoss` (Keras applies it only with ``apply_class_balancing=True``), and ``alpha=None``
in the categorical classes (Keras's ``CategoricalFocalCrossentropy`` multiplies by ``alpha=0.25``).
"""

from __future__ import annotations

import numbers
import warnings

import keras
import numpy as np
from keras import ops
from keras.src.backend.common.masking import set_keras_mask  # what Keras's own losses use (no public alias)

from ._checks import (
    check_axis,
    check_beta,
    check_binary_alpha,
    check_class_alpha,
    check_gamma,
    check_ignore_index,
    check_reduction,
    check_same_shape,
    softmax_target_kind,
)

__all__ = [
    "sigmoid_focal_loss",
    "binary_focal_loss",
    "softmax_focal_loss",
    "categorical_focal_loss",
    "sigmoid_focal_loss_star",
    "BinaryFocalLoss",
    "CategoricalFocalLoss",
    "SparseCategoricalFocalLoss",
]

_HALF = ("float16", "bfloat16")


# ----------------------------------------------------------------------------------------------
# input conversion and checks


def _dtype(tensor) -> str:
    return keras.backend.standardize_dtype(tensor.dtype)


def _is_float(dtype: str) -> bool:
    return dtype.startswith("float") or dtype == "bfloat16"


def _is_integer(dtype: str) -> bool:
    return dtype.startswith("int") or dtype.startswith("uint")


def _read_variable(value):
    """A tensor from a keras.Variable or a tf.Variable (ops.moveaxis and friends reject a tf.Variable)."""
    if isinstance(value, keras.Variable):
        value = value.value  # on TensorFlow, a tf.Variable
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(value, tf.Variable):
            return tf.convert_to_tensor(value)  # a read: differentiable, also under a GradientTape
    return value


def _to_tensor(value, name: str):
    value = _read_variable(value)
    dtype = None
    if not hasattr(value, "dtype"):  # Python numbers and (nested) lists: floats become floatx, as in Keras
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must be an array of real numbers: {error}") from None
        if value.dtype.kind == "f":
            dtype = keras.config.floatx()
    # A NumPy array keeps its dtype (the torch backend would otherwise turn float64 into floatx).
    if dtype is None and isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
        dtype = value.dtype.name
    try:
        tensor = ops.convert_to_tensor(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers: {error}") from None
    dtype = _dtype(tensor)
    if not (_is_float(dtype) or _is_integer(dtype) or dtype == "bool"):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {dtype}")
    return tensor


def _float_input(value, name: str):
    """(tensor in its compute dtype, the dtype the result is returned in)."""
    tensor = _to_tensor(value, name)
    dtype = _dtype(tensor)
    if dtype in _HALF:
        return ops.cast(tensor, "float32"), dtype  # half precision is computed in float32
    if not _is_float(dtype):
        dtype = keras.config.floatx()
        return ops.cast(tensor, dtype), dtype
    return tensor, dtype


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _same_shape(a, b, logits_name: str = "logits") -> None:
    """check_same_shape, where an unknown (None) dimension of a symbolic tensor matches anything."""
    a, b = _shape(a), _shape(b)
    if len(a) == len(b):
        b = tuple(da if db is None else db for da, db in zip(a, b))
        a = tuple(db if da is None else da for da, db in zip(a, b))
    check_same_shape(a, b, logits_name)


def _require(condition, message: str) -> None:
    """A value check (opt-in: it reads a tensor value, i.e. synchronises with the device)."""
    if not bool(ops.convert_to_numpy(condition)):
        raise ValueError(message)


def _check_finite(x, name: str) -> None:
    _require(ops.all(ops.isfinite(x)), f"{name} must be finite; got NaN or inf")


def _check_unit_interval(t, name: str) -> None:
    _require(ops.all((t >= 0.0) & (t <= 1.0)), f"{name} must lie in [0, 1] (and not be NaN)")


def _reduce(loss, reduction: str, count=None):
    """``count`` is the mean's denominator (default: every element); 0.0 when nothing is counted."""
    if reduction == "none":
        return loss
    total = ops.sum(loss)
    if reduction == "sum":
        return total
    if count is None:
        count = ops.cast(ops.size(loss), loss.dtype)
    return total / ops.maximum(ops.cast(count, loss.dtype), 1.0)  # total is 0 when count is 0


# ----------------------------------------------------------------------------------------------
# stable elementwise pieces (autodiff-safe: no inf * 0 anywhere in the backward pass)


def _exp_neg_abs(z):
    """(e^{-|z|}, z >= 0) with |z| written as a where() that agrees with the branch later selected.

    ops.abs has derivative 0 at z = 0 (TensorFlow), which would give softplus'(0) = 1 instead of 1/2;
    here |z| = z on the z >= 0 branch, so each branch is differentiated as one smooth formula.
    """
    nonneg = z >= 0
    return ops.exp(-ops.where(nonneg, z, -z)), nonneg


def _softplus(z):
    """log(1 + e^z) without overflow; log1p keeps full relative accuracy when e^z is tiny.

    Not ops.softplus: backends switch to z itself at z > 20 (torch), which is only float32-accurate.
    """
    e, nonneg = _exp_neg_abs(z)
    return ops.where(nonneg, z + ops.log1p(e), ops.log1p(e))


def _sigmoid(z):
    """sigma(z) to a few ulp for every z (1 - sigma(z) is computed as _sigmoid(-z), never by subtraction)."""
    e, nonneg = _exp_neg_abs(z)
    return ops.where(nonneg, 1.0 / (1.0 + e), e / (1.0 + e))


def _smooth_power(m, log_m, gamma: float):
    """m**gamma from m and log m, with finite derivatives of every order wherever log m is smooth.

    The value is pow(m, gamma) (accurate: exp(gamma * log m) would carry |gamma log m| ulps). Derivatives
    flow through exp(gamma * (log m - stop_gradient(log m))), which equals 1 in value, so the n-th
    derivative is pow(m, gamma) times that of exp(gamma L) / exp(gamma L0): the chain rule never divides by
    m. Callers pass log m computed in log space from the logits (softplus, log-softmax), whose derivatives
    of every order are finite; so are those of m**gamma, for every gamma >= 0 (gamma < 1 included) and
    at saturated logits, where m underflows (autodiff of exp(gamma log m) with log m = log(m) would form
    1/m**2 there: NaN second derivatives). A non-finite log m (a logit spread beyond the dtype's range)
    contributes no derivative.
    """
    if gamma == 0.0:
        return ops.ones_like(m)
    # gamma as a tensor of m's dtype: the torch backend would make a Python float a float32 exponent.
    exponent = ops.convert_to_tensor(gamma, dtype=m.dtype)
    value = ops.stop_gradient(ops.power(ops.where(m > 0, m, 0.0), exponent))  # not ops.maximum: float32 on torch
    log_m = ops.where(ops.isfinite(log_m), log_m, 0.0)
    return value * ops.exp(gamma * (log_m - ops.stop_gradient(log_m)))


def _power(m, gamma: float):
    """m**gamma for a probability-derived m in [0, 1] (the probability-input losses).

    Integer gamma: repeated products (derivatives of every order finite everywhere, m = 0 included, and
    no intermediate smaller than the result's terms). Other gamma: :func:`_smooth_power` with log m =
    log(m); where m = 0 the result is the constant 0 (the log sees 1), since d(m**gamma)/dm is infinite
    there for gamma < 1 while the loss's (m**gamma times a CE that vanishes with m) is 0.
    """
    if gamma == 0.0:
        return ops.ones_like(m)
    if float(gamma).is_integer() and gamma <= 64:
        result, base, n = None, m, int(gamma)
        while n:
            if n & 1:
                result = base if result is None else result * base
            n >>= 1
            if n:
                base = base * base
        return result
    positive = m > 0
    safe = ops.where(positive, m, 1.0)
    return ops.where(positive, _smooth_power(safe, ops.log(safe), gamma), 0.0)


def _logaddexp(a, b):
    """log(e^a + e^b), one smooth formula per branch (derivatives of every order; ties split evenly)."""
    e, nonneg = _exp_neg_abs(a - b)
    return ops.where(nonneg, a, b) + ops.log1p(e)


def _binary_alpha_t(alpha, y):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def _sigmoid_parts(x, y):
    """CE, m = 1 - p_t and log m, all from the logits in log space (no cancellation, no log of a rounded m).

    -log p = softplus(-x), -log(1-p) = softplus(x), m = y q + (1-y) p with q = 1 - p = sigma(-x);
    log m = log q (y = 1), log p (y = 0), else logaddexp(log y + log q, log(1-y) + log p).
    """
    p, q = _sigmoid(x), _sigmoid(-x)
    sp_neg, sp_pos = _softplus(-x), _softplus(x)
    ce = y * sp_neg + (1.0 - y) * sp_pos
    m = y * q + (1.0 - y) * p
    positive, negative = y >= 1.0, y <= 0.0
    soft = ops.logical_not(ops.logical_or(positive, negative))
    y_soft = ops.where(soft, y, 0.5)  # keeps log(0) and its infinite derivative out of the unused branch
    log_m_soft = _logaddexp(ops.log(y_soft) - sp_pos, ops.log(1.0 - y_soft) - sp_neg)
    log_m = ops.where(positive, -sp_pos, ops.where(negative, -sp_neg, log_m_soft))
    return ce, m, log_m


def _sigmoid_inputs(logits, targets, alpha, gamma, validate):
    x, out_dtype = _float_input(logits, "logits")
    y = ops.cast(_to_tensor(targets, "targets"), x.dtype)
    _same_shape(x, y)
    alpha, gamma = check_binary_alpha(alpha), check_gamma(gamma)
    if validate:
        _check_finite(x, "logits")
        _check_unit_interval(y, "targets")
    return x, y, alpha, gamma, out_dtype


# ----------------------------------------------------------------------------------------------
# sigmoid / binary / multi-label


def sigmoid_focal_loss(logits, targets, *, alpha=0.25, gamma=2.0, reduction="none", validate=False):
    r"""Sigmoid focal loss of logits, elementwise (binary or multi-label); see :func:`focal_ref.sigmoid_focal_loss`.

    .. math::

        \mathrm{FL} = \alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE},\quad
        \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x),\quad
        1 - p_t = y\,\sigma(-x) + (1-y)\,\sigma(x).

    Args:
        logits: tensor of any shape (finite).
        targets: tensor of the same shape, values in [0, 1] (soft labels allowed).
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check that logits are finite and targets in [0, 1] (reads values: a sync).

    Returns:
        A tensor of the logits' shape (``"none"``) or a scalar, in the logits' dtype.
    """
    reduction = check_reduction(reduction)
    x, y, alpha, gamma, out_dtype = _sigmoid_inputs(logits, targets, alpha, gamma, validate)
    ce, m, log_m = _sigmoid_parts(x, y)
    loss = _binary_alpha_t(alpha, y) * _smooth_power(m, log_m, gamma) * ce
    return ops.cast(_reduce(loss, reduction), out_dtype)


def binary_focal_loss(probs, targets, *, alpha=0.25, gamma=2.0, reduction="none", validate=False):
    r"""Focal loss of probabilities p = sigma(x), elementwise; see :func:`focal_ref.binary_focal_loss`.

    The math at face value, nothing clipped: p = 0 on a positive (or 1 on a negative) gives +inf; a zero
    target weight makes its term 0 (0 * log 0 = 0). Prefer :func:`sigmoid_focal_loss` (exact near p = 1).
    ``validate`` checks that probs and targets lie in [0, 1] (a sync).
    """
    p, out_dtype = _float_input(probs, "probs")
    y = ops.cast(_to_tensor(targets, "targets"), p.dtype)
    _same_shape(p, y, "probs")
    alpha, gamma = check_binary_alpha(alpha), check_gamma(gamma)
    reduction = check_reduction(reduction)
    if validate:
        _check_unit_interval(p, "probs")
        _check_unit_interval(y, "targets")
    alpha_t = _binary_alpha_t(alpha, y)
    # xlogy-style: a zero weight (y, 1-y or alpha_t) makes the term 0 even where the log is -inf; weighting
    # afterwards would give alpha_t * inf = 0 * inf = NaN. The inner where keeps log(0) (and its infinite
    # derivative) out of unused terms. log1p(-p) is exact for small p.
    use_p, use_q = y * alpha_t > 0, (1.0 - y) * alpha_t > 0
    log_p = ops.where(use_p, ops.log(ops.where(use_p, p, 1.0)), 0.0)
    log_q = ops.where(use_q, ops.log1p(-ops.where(use_q, p, 0.0)), 0.0)
    ce = -(y * log_p + (1.0 - y) * log_q)
    m = y * (1.0 - p) + (1.0 - y) * p
    loss = alpha_t * _power(m, gamma) * ce
    return ops.cast(_reduce(loss, reduction), out_dtype)


def sigmoid_focal_loss_star(
    logits, targets, *, gamma=2.0, beta=1.0, alpha=0.25, reduction="none", validate=False
):
    r"""FL* (Lin et al. 2017, Appendix A), elementwise; see :func:`focal_ref.sigmoid_focal_loss_star`.

    .. math:: \mathrm{FL}^* = \alpha_t\,\mathrm{softplus}(-(\gamma\,y' x + \beta))/\gamma,\qquad y' = 2y - 1.

    ``gamma`` > 0; targets must be hard labels (0 or 1), checked only with ``validate=True`` (a sync).
    """
    reduction = check_reduction(reduction)
    x, y, alpha, _, out_dtype = _sigmoid_inputs(logits, targets, alpha, gamma, validate)
    gamma = check_gamma(gamma, positive=True)
    beta = check_beta(beta)
    if validate:
        _require(
            ops.all((y == 0.0) | (y == 1.0)),
            "targets must be hard labels (0 or 1) for FL*: it is defined for y in {-1, +1}",
        )
    z = gamma * (2.0 * y - 1.0) * x + beta
    loss = _binary_alpha_t(alpha, y) * _softplus(-z) / gamma
    return ops.cast(_reduce(loss, reduction), out_dtype)


# ----------------------------------------------------------------------------------------------
# softmax / multi-class


def _class_targets(targets, values, axis: int, ignore_index, name: str, validate: bool):
    """(class weights y with classes last, keep mask or None), as the reference's _class_targets."""
    raw = _to_tensor(targets, "targets")
    kind = softmax_target_kind(_shape(values), _shape(raw), axis, name)
    num_classes = _shape(values)[axis]
    if kind == "indices":
        if not _is_integer(_dtype(raw)):
            raise TypeError(
                f"targets of shape {_shape(raw)} are class indices and must be integers, got dtype {_dtype(raw)}"
            )
        if _dtype(raw) in ("uint8", "int8", "uint16", "int16"):
            # compare in a dtype that holds both: in uint8, ignore_index=-100 would wrap to 156, a class
            raw = ops.cast(raw, "int32")
        elif _dtype(raw) in ("uint32", "uint64"):
            raw = ops.cast(raw, "int64")
        keep = ops.ones_like(raw, dtype="bool") if ignore_index is None else ops.not_equal(raw, ignore_index)
        if validate:
            bad = ops.logical_and(keep, ops.logical_or(raw < 0, raw >= num_classes))
            _require(
                ops.logical_not(ops.any(bad)),
                f"targets must be class indices in [0, {num_classes}) (or ignore_index={ignore_index})",
            )
        index = ops.where(keep, raw, 0)
        y = ops.one_hot(index, num_classes, dtype=values.dtype) * ops.expand_dims(ops.cast(keep, values.dtype), -1)
        return y, keep
    if ignore_index is not None:
        raise ValueError("ignore_index applies only to integer class-index targets, not to probability targets")
    y = ops.cast(raw, values.dtype)
    if validate:
        _check_unit_interval(y, "targets")
    return ops.moveaxis(y, axis, -1), None


def _log_softmax_parts(x):
    """log p and 1 - p along the last axis, accurate also for the dominant class as p -> 1.

    With k the argmax and s = sum_{c != k} exp(x_c - x_k): log p_k = -log1p(s), 1 - p_k = s/(1+s);
    x_k - logsumexp(x) would round to 0 long before the true log p_k underflows. The other classes have
    p_c <= 1/2, so 1 - p_c = -expm1(log p_c) is accurate.
    x_k is taken through a one-hot of argmax (not ops.max), so its gradient goes to the one class k even
    for tied logits; the shift then differentiates to the true log-softmax gradient.
    """
    num_classes = _shape(x)[-1]
    is_max = ops.one_hot(ops.argmax(x, axis=-1), num_classes, dtype="bool")
    x_k = ops.sum(ops.where(is_max, x, 0.0), axis=-1, keepdims=True)
    shifted = x - x_k
    s = ops.sum(ops.where(is_max, 0.0, ops.exp(shifted)), axis=-1, keepdims=True)
    log1p_s = ops.log1p(s)
    log_p = ops.where(is_max, -log1p_s, shifted - log1p_s)
    one_minus_p = ops.where(is_max, s / (1.0 + s), -ops.expm1(log_p))
    if num_classes == 1:  # p = 1: log(1 - p) = -inf, which _smooth_power treats as no derivative
        return log_p, one_minus_p, ops.full_like(log_p, -np.inf)
    # log(1 - p_k) = log s - log1p(s), with log s a log-sum-exp over the other classes (finite even where s
    # underflows); the others have p_c <= 1/2, so log1p(-p_c) is accurate and smooth.
    others = ops.where(is_max, -np.inf, shifted)
    top = ops.stop_gradient(ops.max(others, axis=-1, keepdims=True))
    top = ops.where(ops.isfinite(top), top, 0.0)
    centred = ops.exp(ops.where(is_max, top, shifted) - top)
    log_s = top + ops.log(ops.sum(ops.where(is_max, 0.0, centred), axis=-1, keepdims=True))
    log_one_minus_p = ops.where(is_max, log_s - log1p_s, ops.log1p(-ops.exp(ops.where(is_max, -1.0, log_p))))
    return log_p, one_minus_p, log_one_minus_p


def _softmax_weights(values, targets, alpha, gamma, axis, ignore_index, name, validate):
    axis = check_axis(axis, len(_shape(values)))
    gamma = check_gamma(gamma)
    ignore_index = check_ignore_index(ignore_index)
    weights = check_class_alpha(alpha, _shape(values)[axis])
    w, keep = _class_targets(targets, values, axis, ignore_index, name, validate)
    if weights is not None:
        w = w * ops.convert_to_tensor(weights, dtype=values.dtype)  # w_c = y_c * alpha_c
    count = None if keep is None else ops.sum(ops.cast(keep, values.dtype))
    return w, count, gamma, axis


def softmax_focal_loss(
    logits,
    targets,
    *,
    alpha=None,
    gamma=2.0,
    reduction="none",
    axis=-1,
    ignore_index=None,
    validate=False,
):
    r"""Softmax (multi-class) focal loss, one value per sample; see :func:`focal_ref.softmax_focal_loss`.

    .. math:: \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^{\gamma}\log p_c,\qquad \log p = \mathrm{log\_softmax}(x)

    Args:
        logits: tensor with a class axis ``axis`` of size C.
        targets: integer class indices (the logits' shape without ``axis``) or probabilities (one-hot or
            soft; the logits' shape; not renormalised).
        alpha: ``None``, one number in [0, 1] for every class, or C per-class weights in [0, 1].
        gamma: focusing parameter >= 0.
        reduction: ``"none"`` (per sample), ``"mean"`` (over non-ignored samples; 0 if none) or ``"sum"``.
        axis: the class axis.
        ignore_index: integer targets only: samples with this label give 0 and leave the mean.
        validate: also check finite logits and targets in range (reads values: a sync).
    """
    reduction = check_reduction(reduction)
    x, out_dtype = _float_input(logits, "logits")
    w, count, gamma, axis = _softmax_weights(x, targets, alpha, gamma, axis, ignore_index, "logits", validate)
    if validate:
        _check_finite(x, "logits")
    log_p, one_minus_p, log_one_minus_p = _log_softmax_parts(ops.moveaxis(x, axis, -1))
    # Only classes with weight w_c > 0 enter (exact sums for one-hot targets). log p_c is -inf only when the
    # logits' spread overflows the dtype; masking it inside too keeps 0 * inf out of the gradient.
    used = w > 0
    focal = _smooth_power(one_minus_p, log_one_minus_p, gamma)
    terms = ops.where(used, w * focal * -ops.where(used, log_p, 0.0), 0.0)
    return ops.cast(_reduce(ops.sum(terms, axis=-1), reduction, count), out_dtype)


def categorical_focal_loss(
    probs,
    targets,
    *,
    alpha=None,
    gamma=2.0,
    reduction="none",
    axis=-1,
    ignore_index=None,
    validate=False,
):
    r"""Softmax focal loss of probabilities: -sum_c y_c alpha_c (1-p_c)^gamma log p_c, one value per sample.

    ``probs`` are used as given (in [0, 1], not renormalised, not clipped); a zero probability on a class
    with positive target weight gives +inf. Other arguments as in :func:`softmax_focal_loss`.
    """
    reduction = check_reduction(reduction)
    p, out_dtype = _float_input(probs, "probs")
    w, count, gamma, axis = _softmax_weights(p, targets, alpha, gamma, axis, ignore_index, "probs", validate)
    if validate:
        _check_unit_interval(p, "probs")
    p = ops.moveaxis(p, axis, -1)
    used = w > 0
    # The inner where keeps log(0) and its infinite derivative out of terms with zero weight.
    log_p = ops.log(ops.where(used, p, 1.0))
    terms = ops.where(used, w * _power(1.0 - p, gamma) * -log_p, 0.0)
    return ops.cast(_reduce(ops.sum(terms, axis=-1), reduction, count), out_dtype)


# ----------------------------------------------------------------------------------------------
# Keras Loss classes


def _class_alpha(alpha):
    """Validate a softmax ``alpha`` before the number of classes is known: None, a number, or a tuple."""
    if alpha is None or isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return None if alpha is None else check_class_alpha(alpha, 1)[0]
    length = len(alpha) if hasattr(alpha, "__len__") and not isinstance(alpha, (str, bytes)) else 0
    return check_class_alpha(alpha, length)  # raises for strings, scalars of other types, nesting


def _alpha_config(alpha):
    return list(alpha) if isinstance(alpha, tuple) else alpha


def _check_label_smoothing(label_smoothing) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing must be a number in [0, 1], got {type(label_smoothing).__name__}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _warn_one_class(y_pred, axis: int, loss_name: str) -> None:
    """Keras's warning (a SyntaxWarning, as CategoricalFocalCrossentropy's) for a class axis of size 1."""
    shape = _shape(y_pred)
    if shape and -len(shape) <= axis < len(shape) and shape[axis] == 1:
        warnings.warn(
            f"In loss {loss_name}, expected y_pred to have num_classes > 1 on axis {axis}. Received: "
            f"y_pred.shape={shape}. With one class p = 1 and the loss is 0; consider BinaryFocalLoss.",
            SyntaxWarning,
            stacklevel=3,
        )


def _stacked(value):
    """One tensor from a (nested) list: Loss.__call__ converts a Python list leaf by leaf."""
    if isinstance(value, (list, tuple)):
        return ops.stack([_stacked(v) for v in value])
    return value


def _squeeze_or_expand(y_true, y_pred):
    """Keras's ``squeeze_or_expand_to_same_rank`` (keras/src/losses/loss.py), as its built-in losses use it.

    If the ranks differ by one and the longer has a last axis of 1: a rank-1 shorter one gains that axis
    (labels (n,) against a Dense(1) output (n, 1) are n samples), otherwise the longer loses it.
    """
    t, p = len(_shape(y_true)), len(_shape(y_pred))
    if t == p + 1 and _shape(y_true)[-1] == 1:
        if p == 1:
            y_pred = ops.expand_dims(y_pred, -1)
        else:
            y_true = ops.squeeze(y_true, axis=-1)
    elif p == t + 1 and _shape(y_pred)[-1] == 1:
        if t == 1:
            y_true = ops.expand_dims(y_true, -1)
        else:
            y_pred = ops.squeeze(y_pred, axis=-1)
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="focal_ref")
class BinaryFocalLoss(keras.losses.Loss):
    """Binary / multi-label focal loss, Keras style: ``loss(y_true, y_pred)``.

    Per sample: the mean over the last axis of :func:`sigmoid_focal_loss` (``from_logits=True``) or
    :func:`binary_focal_loss` (probabilities), as ``keras.losses.BinaryCrossentropy`` does; the default
    ``"sum_over_batch_size"`` reduction then equals the reference's ``reduction="mean"``.

    Args:
        alpha: weight of the positive class in [0, 1] (always applied); ``None`` for no weighting.
        gamma: focusing parameter >= 0.
        from_logits: whether ``y_pred`` holds logits (recommended: exact in log space) or probabilities.
        reduction, name, dtype: as in ``keras.losses.Loss``.
    """

    def __init__(
        self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size",
        name="binary_focal_loss", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_binary_alpha(alpha)
        self.gamma = check_gamma(gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        y_true, y_pred = _squeeze_or_expand(_stacked(y_true), _stacked(y_pred))
        if self.label_smoothing:  # as Keras: towards 1/2
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        fn = sigmoid_focal_loss if self.from_logits else binary_focal_loss
        loss = fn(y_pred, y_true, alpha=self.alpha, gamma=self.gamma)
        # sum / n, not ops.mean: Keras 3.15's torch backend computes ops.mean of float64 in float32.
        return ops.sum(loss, axis=-1) / ops.cast(ops.shape(loss)[-1], loss.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha, gamma=self.gamma, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )
        return config


@keras.saving.register_keras_serializable(package="focal_ref")
class CategoricalFocalLoss(keras.losses.Loss):
    """Softmax focal loss with one-hot or soft ``y_true`` (the shape of ``y_pred``), Keras style.

    Per sample: :func:`softmax_focal_loss` (``from_logits=True``) or :func:`categorical_focal_loss`
    (probabilities, used as given); ``"sum_over_batch_size"`` equals the reference's ``"mean"``.

    Args:
        alpha: ``None``, one weight for every class, or C per-class weights in [0, 1].
        gamma: focusing parameter >= 0.
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        axis: the class axis.
        reduction, name, dtype: as in ``keras.losses.Loss``.
    """

    def __init__(
        self, alpha=None, gamma=2.0, from_logits=False, axis=-1, label_smoothing=0.0,
        reduction="sum_over_batch_size", name="categorical_focal_loss", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")  # its range is checked per call
        self.alpha = _class_alpha(alpha)
        self.gamma = check_gamma(gamma)
        self.from_logits = bool(from_logits)
        self.axis = int(axis)
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def _fn(self):
        return softmax_focal_loss if self.from_logits else categorical_focal_loss

    def call(self, y_true, y_pred):
        y_true, y_pred = _stacked(y_true), _stacked(y_pred)
        _warn_one_class(y_pred, self.axis, self.name)
        if self.label_smoothing:  # as Keras: towards 1/C
            num_classes = _shape(y_pred)[self.axis]
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        if not self.from_logits:
            # as Keras's categorical (focal) crossentropy: probabilities are divided by their sum first
            y_pred = y_pred / ops.sum(y_pred, axis=self.axis, keepdims=True)
        return self._fn()(y_pred, y_true, alpha=self.alpha, gamma=self.gamma, axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=_alpha_config(self.alpha), gamma=self.gamma, from_logits=self.from_logits, axis=self.axis,
            label_smoothing=self.label_smoothing,
        )
        return config


@keras.saving.register_keras_serializable(package="focal_ref")
class SparseCategoricalFocalLoss(CategoricalFocalLoss):
    """Softmax focal loss with integer class labels ``y_true`` (Keras has no built-in one).

    ``y_true`` has the shape of ``y_pred`` without the class axis (a trailing axis of size 1 is dropped,
    as Keras does). Samples labelled ``ignore_index`` give 0 and are left out of the
    ``"sum_over_batch_size"``/``"mean"`` denominator, so that reduction equals the reference's ``"mean"``.
    They are marked as Keras's ``ignore_class`` marks them, with a Keras mask on the per-sample loss, so a
    mask on ``y_pred`` (``Embedding(mask_zero=True)``) and ``ignore_index`` together count each sample once.
    Other arguments as in :class:`CategoricalFocalLoss`.
    """

    def __init__(
        self, alpha=None, gamma=2.0, from_logits=False, axis=-1, ignore_index=None,
        reduction="sum_over_batch_size", name="sparse_categorical_focal_loss", dtype=None,
    ):
        super().__init__(
            alpha=alpha, gamma=gamma, from_logits=from_logits, axis=axis, reduction=reduction, name=name, dtype=dtype
        )
        self.ignore_index = check_ignore_index(ignore_index)

    def _labels(self, y_true, y_pred):
        # Loss.__call__ converts y_true to the loss dtype (float); class indices are integers.
        y_true = ops.convert_to_tensor(y_true)
        if len(_shape(y_true)) == len(_shape(y_pred)) and _shape(y_true)[self.axis] == 1:
            y_true = ops.squeeze(y_true, axis=self.axis)
        return ops.cast(y_true, "int32")

    def call(self, y_true, y_pred):
        y_pred = _stacked(y_pred)
        _warn_one_class(y_pred, self.axis, self.name)
        y_true = self._labels(_stacked(y_true), y_pred)
        loss = self._fn()(
            y_pred, y_true, alpha=self.alpha, gamma=self.gamma, axis=self.axis, ignore_index=self.ignore_index
        )
        if self.ignore_index is not None:
            # As Keras's ignore_class: the ignored samples become a Keras mask on the per-sample loss, which
            # Loss.__call__ combines (logical and) with any mask on y_pred (Embedding(mask_zero=True)) and
            # applies once: a mean-like reduction then divides by the number of samples kept by both.
            set_keras_mask(loss, mask=ops.not_equal(y_true, self.ignore_index))
        return loss

    def get_config(self):
        config = super().get_config()
        config.pop("label_smoothing")  # integer labels: no smoothing (Keras's SparseCategoricalCrossentropy has none)
        config.update(ignore_index=self.ignore_index)
        return config
