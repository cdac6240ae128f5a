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
float64 input as float32, and everything is computed in float32.

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
  ``reduction="sum"`` divided by the size of the last axis. Like Keras, a rank-1 ``y_pred`` of shape
  ``(n,)`` is one sample of n labels; use shape ``(n, 1)`` for n samples.
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

import keras
import numpy as np
from keras import ops

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


def _to_tensor(value, name: str):
    # A NumPy array keeps its dtype (the torch backend would otherwise turn float64 into floatx).
    dtype = value.dtype.name if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf" else None
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


def _power(m, gamma: float):
    """m**gamma for m in [0, 1] with a finite gradient at m = 0 for every gamma >= 0.

    Autodiff of m**gamma at m = 0 gives gamma * 0**(gamma-1) * dm = inf * 0 = NaN for gamma < 1
    (m = 0 when p_t rounds to 1), and for a tiny m > 0 and small gamma m**(gamma-1) overflows. So the
    value is pow(m, gamma) (accurate), but the gradient flows through exp(gamma * log m), whose backward
    pass forms (upstream * m**gamma) / m and never m**(gamma-1); v - stop_gradient(v) adds exactly 0.
    Where m = 0 the result is the constant 0, and the log sees 1 (so no inf enters either branch).
    """
    if gamma == 0.0:
        return ops.ones_like(m)
    positive = m > 0
    safe = ops.where(positive, m, 1.0)
    via_log = ops.exp(gamma * ops.log(safe))
    # gamma as a tensor of m's dtype: the torch backend would make a Python float a float32 exponent.
    exponent = ops.convert_to_tensor(gamma, dtype=m.dtype)
    value = ops.stop_gradient(ops.power(safe, exponent)) + (via_log - ops.stop_gradient(via_log))
    return ops.where(positive, value, 0.0)


def _binary_alpha_t(alpha, y):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def _sigmoid_parts(x, y):
    """CE and m = 1 - p_t: -log p = softplus(-x), -log(1-p) = softplus(x), m = y q + (1-y) p (no cancellation)."""
    p, q = _sigmoid(x), _sigmoid(-x)
    ce = y * _softplus(-x) + (1.0 - y) * _softplus(x)
    m = y * q + (1.0 - y) * p
    return ce, m


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
    ce, m = _sigmoid_parts(x, y)
    loss = _binary_alpha_t(alpha, y) * _power(m, gamma) * ce
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
    return log_p, one_minus_p


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
    log_p, one_minus_p = _log_softmax_parts(ops.moveaxis(x, axis, -1))
    # Only classes with weight w_c > 0 enter (exact sums for one-hot targets). log p_c is -inf only when the
    # logits' spread overflows the dtype; masking it inside too keeps 0 * inf out of the gradient.
    used = w > 0
    terms = ops.where(used, w * _power(one_minus_p, gamma) * -ops.where(used, log_p, 0.0), 0.0)
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


def _squeeze_or_expand(y_true, y_pred):
    """Keras's rule: if the ranks differ by one and the longer has a last axis of 1, drop that axis."""
    t, p = len(_shape(y_true)), len(_shape(y_pred))
    if t == p + 1 and _shape(y_true)[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    elif p == t + 1 and _shape(y_pred)[-1] == 1:
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
        self, alpha=0.25, gamma=2.0, from_logits=False, reduction="sum_over_batch_size", name="binary_focal_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_binary_alpha(alpha)
        self.gamma = check_gamma(gamma)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_true, y_pred = _squeeze_or_expand(y_true, y_pred)
        fn = sigmoid_focal_loss if self.from_logits else binary_focal_loss
        loss = fn(y_pred, y_true, alpha=self.alpha, gamma=self.gamma)
        # sum / n, not ops.mean: Keras 3.15's torch backend computes ops.mean of float64 in float32.
        return ops.sum(loss, axis=-1) / ops.cast(ops.shape(loss)[-1], loss.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, gamma=self.gamma, from_logits=self.from_logits)
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
        self, alpha=None, gamma=2.0, from_logits=False, axis=-1, reduction="sum_over_batch_size",
        name="categorical_focal_loss", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")  # its range is checked per call
        self.alpha = _class_alpha(alpha)
        self.gamma = check_gamma(gamma)
        self.from_logits = bool(from_logits)
        self.axis = int(axis)

    def _fn(self):
        return softmax_focal_loss if self.from_logits else categorical_focal_loss

    def call(self, y_true, y_pred):
        return self._fn()(y_pred, y_true, alpha=self.alpha, gamma=self.gamma, axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config.update(alpha=_alpha_config(self.alpha), gamma=self.gamma, from_logits=self.from_logits, axis=self.axis)
        return config


@keras.saving.register_keras_serializable(package="focal_ref")
class SparseCategoricalFocalLoss(CategoricalFocalLoss):
    """Softmax focal loss with integer class labels ``y_true`` (Keras has no built-in one).

    ``y_true`` has the shape of ``y_pred`` without the class axis (a trailing axis of size 1 is dropped,
    as Keras does). Samples labelled ``ignore_index`` give 0 and are left out of the
    ``"sum_over_batch_size"``/``"mean"`` denominator, so that reduction equals the reference's ``"mean"``.
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
        y_true = self._labels(y_true, y_pred)
        return self._fn()(
            y_pred, y_true, alpha=self.alpha, gamma=self.gamma, axis=self.axis, ignore_index=self.ignore_index
        )

    def __call__(self, y_true, y_pred, sample_weight=None):
        mean_like = ("sum_over_batch_size", "mean", "mean_with_sample_weight")
        if self.ignore_index is None or self.reduction not in mean_like:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        # Leave ignored samples out of the denominator, as Keras's ignore_class mask does: weight kept
        # samples by total/valid (mean-like reductions divide by the total number of samples).
        y_pred_t = ops.convert_to_tensor(y_pred)
        keep = ops.cast(ops.not_equal(self._labels(y_true, y_pred_t), self.ignore_index), self.dtype)
        if self.reduction == "mean_with_sample_weight":
            weight = keep
        else:
            total = ops.cast(ops.size(keep), self.dtype)
            weight = keep * (total / ops.maximum(ops.sum(keep), 1.0))
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            while len(_shape(sample_weight)) < len(_shape(weight)):
                sample_weight = ops.expand_dims(sample_weight, -1)
            weight = weight * sample_weight
        return super().__call__(y_true, y_pred, sample_weight=weight)

    def get_config(self):
        config = super().get_config()
        config.update(ignore_index=self.ignore_index)
        return config
