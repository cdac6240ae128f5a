"""Building blocks of :mod:`focal_ref.keras`: input conversion, argument checks and stable elementwise math.

Everything is written with ``keras.ops`` only, so it runs on the TensorFlow, PyTorch and JAX backends. The
numerics (log space, no clipping, derivatives of every order finite) are explained in
:mod:`focal_ref.keras`; the math is Lin et al. 2017, https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops

from ._checks import check_binary_alpha, check_gamma, check_same_shape

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
        b = tuple(da if db is None else db for da, db in zip(a, b, strict=True))
        a = tuple(db if da is None else da for da, db in zip(a, b, strict=True))
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
    value = ops.stop_gradient(
        ops.power(ops.where(m > 0, m, 0.0), exponent)
    )  # not ops.maximum: float32 on torch
    log_m = ops.where(ops.isfinite(log_m), log_m, 0.0)
    return value * ops.exp(gamma * (log_m - ops.stop_gradient(log_m)))


def _power(m, gamma: float):
    """m**gamma for a probability-derived m in [0, 1] (the probability-input losses).

    Integer gamma: repeated products (derivatives of every order finite everywhere, m = 0 included, and
    no intermediate smaller than the result's terms). Other gamma: ``ops.power`` where m**(gamma-1) is
    finite (its derivative gamma m**(gamma-1) is formed directly), :func:`_smooth_power` with log m = log(m)
    where m**(gamma-1) would overflow; where m = 0 the result is the constant 0, since d(m**gamma)/dm is
    infinite there for gamma < 1 while the loss's (m**gamma times a CE that vanishes with m) is 0.
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
    # ops.power wherever its derivative gamma m^(gamma-1) (<= 1/m) is finite: the backward pass then
    # multiplies the upstream gradient by it directly, so the focal term gamma m^(gamma-1) CE keeps full
    # accuracy; through log m it would be formed as (gamma m^gamma CE) / m, whose numerator underflows at
    # easy examples (p = sigma(-58) in float32, sigma(-472) in float64). That holds for every normal m (and
    # most subnormal ones); only where m^(gamma-1) would overflow (m < 1/max, gamma near 0): the log form.
    # (CPU kernels of TensorFlow and XLA read a subnormal m as 0 anyway: log m = -inf, the log form.)
    log_safe = ops.log(safe)
    limit = float(np.log(np.finfo(_np_dtype(m)).max)) - 1.0
    normal = (gamma - 1.0) * log_safe < limit
    exponent = ops.convert_to_tensor(gamma, dtype=m.dtype)
    direct = ops.power(ops.where(normal, safe, 1.0), exponent)
    via_log = _smooth_power(safe, log_safe, gamma)
    return ops.where(positive, ops.where(normal, direct, via_log), 0.0)


def _np_dtype(tensor):
    return np.dtype(_dtype(tensor)) if _dtype(tensor) != "bfloat16" else np.dtype("float32")


def _logaddexp(a, b):
    """log(e^a + e^b), one smooth formula per branch (derivatives of every order; ties split evenly)."""
    e, nonneg = _exp_neg_abs(a - b)
    return ops.where(nonneg, a, b) + ops.log1p(e)


def _binary_alpha_t(alpha, y):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def _sigmoid_parts(x, y, pos_weight=None):
    """CE, m = 1 - p_t and log m, all from the logits in log space (no cancellation, no log of a rounded m).

    -log p = softplus(-x), -log(1-p) = softplus(x), m = y q + (1-y) p with q = 1 - p = sigma(-x);
    log m = log q (y = 1), log p (y = 0), else logaddexp(log y + log q, log(1-y) + log p).
    """
    p, q = _sigmoid(x), _sigmoid(-x)
    sp_neg, sp_pos = _softplus(-x), _softplus(x)
    ce = (y if pos_weight is None else pos_weight * y) * sp_neg + (1.0 - y) * sp_pos
    m = y * q + (1.0 - y) * p
    positive, negative = y >= 1.0, y <= 0.0
    soft = ops.logical_not(ops.logical_or(positive, negative))
    y_soft = ops.where(soft, y, 0.5)  # keeps log(0) and its infinite derivative out of the unused branch
    log_m_soft = _logaddexp(ops.log(y_soft) - sp_pos, ops.log(1.0 - y_soft) - sp_neg)
    log_m = ops.where(positive, -sp_pos, ops.where(negative, -sp_neg, log_m_soft))
    # Beyond |x| = 1e4 every derivative of log m is below e^-1e4 (0 in float64), while the backward pass forms
    # gamma * alpha_t * m^gamma * CE before multiplying by it: with CE ~ |x| near the dtype's max that product
    # overflows and inf * 0 is NaN. There log m enters as a constant (the same value, the same zero
    # derivatives).
    log_m = ops.where(ops.abs(x) < 1e4, log_m, ops.stop_gradient(log_m))
    return ce, m, log_m


def _sigmoid_inputs(logits, targets, alpha, gamma, validate, ignore_index=None, name="logits"):
    """(x, y with ignored targets set to 0, alpha, gamma, output dtype, keep mask or None)."""
    x, out_dtype = _float_input(logits, name)
    y = ops.cast(_to_tensor(targets, "targets"), x.dtype)
    _same_shape(x, y, name)
    alpha, gamma = check_binary_alpha(alpha), check_gamma(gamma)
    ignore_index = _check_binary_ignore_index(ignore_index)
    keep = None
    if ignore_index is not None:
        keep = ops.not_equal(y, ignore_index)
        y = ops.where(keep, y, 0.0)
    if validate:
        if name == "logits":
            _check_finite(x, "logits")
        _check_unit_interval(y, "targets")
    return x, y, alpha, gamma, out_dtype, keep


def _check_binary_ignore_index(ignore_index):
    """The sigmoid family's ``ignore_index``: None, or a finite real number outside [0, 1] (e.g. -1)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real):
        raise TypeError(f"ignore_index must be a real number or None, got {type(ignore_index).__name__}")
    value = float(ignore_index)
    if not math.isfinite(value) or 0.0 <= value <= 1.0:
        raise ValueError(
            f"ignore_index must be a finite number outside [0, 1] (e.g. -1), got {ignore_index!r}"
        )
    return value


def _element_weights(value, x, name: str, validate: bool):
    """``weight`` / ``pos_weight``: None, or a tensor broadcastable to x's shape (values >= 0, finite)."""
    if value is None:
        return None
    w = ops.cast(_to_tensor(value, name), x.dtype)
    w_shape, x_shape = _shape(w), _shape(x)
    if None not in w_shape and None not in x_shape:
        try:
            broadcast = np.broadcast_shapes(w_shape, x_shape)
        except ValueError:
            broadcast = None
        if broadcast != x_shape:
            raise ValueError(f"{name} of shape {w_shape} does not broadcast to the logits' shape {x_shape}")
    if validate:
        _require(ops.all(ops.isfinite(w) & (w >= 0.0)), f"{name} must be finite and >= 0")
    return w


def _count_kept(keep, dtype):
    return None if keep is None else ops.sum(ops.cast(keep, dtype))


def _log_softmax_parts(x):
    """log p and 1 - p along the last axis, accurate also for the dominant class as p -> 1.

    With k the argmax and s = sum_{c != k} exp(x_c - x_k): log p_k = -log1p(s), 1 - p_k = s/(1+s);
    x_k - logsumexp(x) would round to 0 long before the true log p_k underflows. The other classes have
    p_c <= 1/2, so 1 - p_c = -expm1(log p_c) is accurate.
    x_k is taken through a one-hot of argmax (not ops.max), so its gradient goes to the one class k even
    for tied logits; the shift then differentiates to the true log-softmax gradient.
    """
    num_classes = _shape(x)[-1]
    if 0 in _shape(x):  # no samples (or no classes): empty parts; ops.max/argmax refuse an empty tensor
        return x, x, x
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
