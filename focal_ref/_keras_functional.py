"""The functional focal losses of :mod:`focal_ref.keras` (the reference's names and arguments).

Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object Detection", https://arxiv.org/abs/1708.02002.

A little over the project's ~400 lines: seven public functions, each with the docstring (math, Args,
Returns, Raises, a doctest) that the reference's twin carries; the numerics live in ``_keras_core``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from keras import ops

from ._checks import (
    check_axis,
    check_beta,
    check_class_alpha,
    check_gamma,
    check_ignore_index,
    check_reduction,
    softmax_target_kind,
)
from ._keras_core import (
    _binary_alpha_t,
    _check_finite,
    _check_unit_interval,
    _count_kept,
    _dtype,
    _element_weights,
    _float_input,
    _is_integer,
    _log_softmax_parts,
    _power,
    _reduce,
    _require,
    _shape,
    _sigmoid_inputs,
    _sigmoid_parts,
    _smooth_power,
    _softplus,
    _to_tensor,
)

Tensor = Any  # a tensor of the active Keras backend
ArrayLike = Any  # a backend tensor, NumPy array, Python number or (nested) list, tf/keras Variable
AlphaLike = float | Sequence[float] | None
Reduction = Literal["none", "mean", "sum"]

# ----------------------------------------------------------------------------------------------
# sigmoid / binary / multi-label


def _finish(loss, weight, keep, reduction):
    """Per-element weight, the ignore mask (0 loss and gradient; out of the mean's count), the reduction."""
    if weight is not None:  # w = 0 gives 0 also where FL is inf (p = 1 on a negative), as the reference
        loss = ops.where(weight > 0, loss * weight, 0.0)
    if keep is not None:
        loss = ops.where(keep, loss, 0.0)
    return _reduce(loss, reduction, _count_kept(keep, loss.dtype))


def sigmoid_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    validate: bool = False,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    ignore_index: float | None = None,
) -> Tensor:
    r"""Sigmoid focal loss of logits, elementwise (binary or multi-label), with ``keras.ops``.

    The reference is :func:`focal_ref.sigmoid_focal_loss`; the math (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002), in log space:

    .. math::

        \mathrm{FL} = \alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE},\quad
        \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x),\quad
        1 - p_t = y\,\sigma(-x) + (1-y)\,\sigma(x).

    Args:
        logits: tensor of any shape (finite); a NumPy array, list, ``tf.Variable``, ``keras.Variable``, JAX
            array or torch tensor on the matching backend.
        targets: the same shape, values in [0, 1] (soft labels allowed).
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check that logits are finite and targets in [0, 1] (reads values: a sync).
        weight: per-element weights w_i >= 0, finite, broadcastable to the shape; each loss becomes
            w_i FL_i (the mean's count stays unweighted).
        pos_weight: w_+ >= 0, broadcastable (typically per class, shape (C,)); scales the positive term:
            CE = -[w_+ y log p + (1-y) log(1-p)], as ``BCEWithLogitsLoss(pos_weight=)``.
        ignore_index: a number outside [0, 1] (e.g. -1): elements whose target equals it give 0 (also in
            the gradient) and leave the mean's count (0.0 when every element is ignored).

    Returns:
        A tensor of the logits' shape (``"none"``) or a scalar, in the logits' dtype.

    Raises:
        ValueError: a bad ``alpha``, ``gamma`` or ``reduction``, mismatched shapes, or (with ``validate``)
            non-finite logits or targets outside [0, 1].
        TypeError: an argument of the wrong type.

    Example:
        >>> from focal_ref.keras import sigmoid_focal_loss
        >>> print(f"{float(sigmoid_focal_loss([0.0], [1.0], alpha=None, gamma=0.0)[0]):.4f}")
        0.6931
    """
    reduction = check_reduction(reduction)
    x, y, alpha, gamma, out_dtype, keep = _sigmoid_inputs(
        logits, targets, alpha, gamma, validate, ignore_index
    )
    w = _element_weights(weight, x, "weight", validate)
    pw = _element_weights(pos_weight, x, "pos_weight", validate)
    ce, m, log_m = _sigmoid_parts(x, y, pw)
    loss = _binary_alpha_t(alpha, y) * _smooth_power(m, log_m, gamma) * ce
    return ops.cast(_finish(loss, w, keep, reduction), out_dtype)


def binary_focal_loss(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    validate: bool = False,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    ignore_index: float | None = None,
) -> Tensor:
    r"""Focal loss of probabilities p = sigma(x), elementwise; reference: :func:`focal_ref.binary_focal_loss`.

    .. math:: \mathrm{FL} = -\alpha_t\,(1-p_t)^{\gamma}\,[y \log p + (1-y)\log(1-p)]

    (https://arxiv.org/abs/1708.02002). The math at face value, nothing clipped: p = 0 on a positive (or 1
    on a negative) gives +inf; a zero target weight makes its term 0 (0 * log 0 = 0). Prefer
    :func:`sigmoid_focal_loss`, exact near p = 1.

    Args:
        probs: probabilities in [0, 1], any shape.
        targets: the same shape, values in [0, 1].
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check that probs and targets lie in [0, 1] (a sync).
        weight: per-element weights w_i >= 0, finite, broadcastable to the shape; each loss becomes
            w_i FL_i (the mean's count stays unweighted).
        pos_weight: w_+ >= 0, broadcastable (typically per class, shape (C,)); scales the positive term:
            CE = -[w_+ y log p + (1-y) log(1-p)], as ``BCEWithLogitsLoss(pos_weight=)``.
        ignore_index: a number outside [0, 1] (e.g. -1): elements whose target equals it give 0 (also in
            the gradient) and leave the mean's count (0.0 when every element is ignored).

    Returns:
        A tensor of the probs' shape (``"none"``) or a scalar, in the probs' dtype.

    Raises:
        ValueError: a bad hyperparameter, mismatched shapes, or (with ``validate``) values outside [0, 1].
        TypeError: an argument of the wrong type.

    Example:
        >>> from focal_ref.keras import binary_focal_loss
        >>> print(f"{float(binary_focal_loss([0.5], [1.0], alpha=None, gamma=1.0)[0]):.4f}")
        0.3466
    """
    reduction = check_reduction(reduction)
    p, y, alpha, gamma, out_dtype, keep = _sigmoid_inputs(
        probs, targets, alpha, gamma, validate, ignore_index, "probs"
    )
    if validate:
        _check_unit_interval(p, "probs")
    w = _element_weights(weight, p, "weight", validate)
    pw = _element_weights(pos_weight, p, "pos_weight", validate)
    alpha_t = _binary_alpha_t(alpha, y)
    y_pos = y if pw is None else pw * y  # the weight of -log p
    # xlogy-style: a zero weight (y, 1-y or alpha_t) makes the term 0 even where the log is -inf; weighting
    # afterwards would give alpha_t * inf = 0 * inf = NaN. The inner where keeps log(0) (and its infinite
    # derivative) out of unused terms. log1p(-p) is exact for small p.
    use_p, use_q = y_pos * alpha_t > 0, (1.0 - y) * alpha_t > 0
    # elements with weight 0 or an ignored target give 0 in value and gradient: their logs are kept out too
    # (p = 1 on a negative: inf in the unused branch, whose derivative 1/(1-p) = inf times 0 would be NaN)
    active = ops.ones_like(use_p) if w is None else ops.broadcast_to(w > 0, _shape(p))
    if keep is not None:
        active = ops.logical_and(active, keep)
    use_p, use_q = ops.logical_and(use_p, active), ops.logical_and(use_q, active)
    log_p = ops.where(use_p, ops.log(ops.where(use_p, p, 1.0)), 0.0)
    log_q = ops.where(use_q, ops.log1p(-ops.where(use_q, p, 0.0)), 0.0)
    ce = -(y_pos * log_p + (1.0 - y) * log_q)
    m = y * (1.0 - p) + (1.0 - y) * p
    loss = alpha_t * _power(m, gamma) * ce
    return ops.cast(_finish(loss, w, keep, reduction), out_dtype)


def sigmoid_focal_loss_star(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    gamma: float = 2.0,
    beta: float = 1.0,
    alpha: float | None = 0.25,
    reduction: Reduction = "none",
    validate: bool = False,
) -> Tensor:
    r"""FL* (Lin et al. 2017, Appendix A, https://arxiv.org/abs/1708.02002), elementwise.

    The reference is :func:`focal_ref.sigmoid_focal_loss_star`:

    .. math:: \mathrm{FL}^* = \alpha_t\,\mathrm{softplus}(-(\gamma\,y' x + \beta))/\gamma,\qquad y' = 2y - 1.

    Args:
        logits: tensor of any shape (finite).
        targets: hard labels (0 or 1) of the same shape; checked only with ``validate``.
        gamma: > 0.
        beta: any finite shift.
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check finite logits and hard targets (a sync).

    Returns:
        A tensor of the logits' shape (``"none"``) or a scalar, in the logits' dtype.

    Raises:
        ValueError: ``gamma <= 0``, a bad ``beta``/``alpha``/``reduction``, mismatched shapes, or (with
            ``validate``) soft targets or non-finite logits.
        TypeError: an argument of the wrong type.

    Example:
        >>> from focal_ref.keras import sigmoid_focal_loss_star
        >>> print(f"{float(sigmoid_focal_loss_star([0.0], [1.0], gamma=1.0, beta=0.0, alpha=None)[0]):.4f}")
        0.6931
    """
    reduction = check_reduction(reduction)
    x, y, alpha, _, out_dtype, _ = _sigmoid_inputs(logits, targets, alpha, gamma, validate)
    gamma = check_gamma(gamma, positive=True)
    beta = check_beta(beta)
    if validate:
        _require(
            ops.all((y == 0.0) | (y == 1.0)),
            "targets must be hard labels (0 or 1) for FL*: it is defined for y in {-1, +1}",
        )
    # z = gamma y' x + beta overflows for |x| near the dtype's max (gamma > 1); there softplus(-z) = -z
    # exactly, so FL* = -alpha_t (y' x + beta / gamma), finite (as the reference). The overflowing z is
    # replaced by 0 in the unused branch, keeping inf out of the derivatives.
    u = (2.0 * y - 1.0) * x + beta / gamma  # z / gamma
    z = gamma * u
    overflow = ops.logical_not(ops.isfinite(z))
    plain = _softplus(-ops.where(overflow, 0.0, z)) / gamma
    loss = _binary_alpha_t(alpha, y) * ops.where(overflow, ops.where(u < 0, -u, 0.0), plain)
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
                f"targets of shape {_shape(raw)} are class indices and must be integers, "
                f"got dtype {_dtype(raw)}"
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
        kept = ops.expand_dims(ops.cast(keep, values.dtype), -1)
        y = ops.one_hot(index, num_classes, dtype=values.dtype) * kept
        return y, keep
    if ignore_index is not None:
        raise ValueError(
            "ignore_index applies only to integer class-index targets, not to probability targets"
        )
    y = ops.cast(raw, values.dtype)
    if validate:
        _check_unit_interval(y, "targets")
    return ops.moveaxis(y, axis, -1), None


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
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: AlphaLike = None,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    axis: int = -1,
    ignore_index: int | None = None,
    validate: bool = False,
) -> Tensor:
    r"""Softmax (multi-class) focal loss, one value per sample; see :func:`focal_ref.softmax_focal_loss`.

    .. math::

        \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^{\gamma}\log p_c,\qquad
        \log p = \mathrm{log\_softmax}(x)

    (https://arxiv.org/abs/1708.02002), with log p and 1 - p of the dominant class written with log1p.

    Args:
        logits: tensor with a class axis ``axis`` of size C.
        targets: integer class indices (the logits' shape without ``axis``; any integer dtype) or
            probabilities (one-hot or soft; the logits' shape; not renormalised).
        alpha: ``None``, one number in [0, 1] for every class, or C per-class weights in [0, 1].
        gamma: focusing parameter >= 0.
        reduction: ``"none"`` (per sample), ``"mean"`` (over non-ignored samples; 0 if none) or ``"sum"``.
        axis: the class axis.
        ignore_index: integer targets only: samples with this label give 0 and leave the mean; compared in
            a dtype that holds both (``-100`` never matches a ``uint8`` class 156).
        validate: also check finite logits and targets in range (reads values: a sync).

    Returns:
        A tensor of the logits' shape without ``axis`` (``"none"``) or a scalar, in the logits' dtype.

    Raises:
        ValueError: a bad hyperparameter or axis, targets of neither shape, ``ignore_index`` with
            probability targets, or (with ``validate``) non-finite logits or targets out of range.
        TypeError: an argument of the wrong type, or non-integer class indices.

    Example:
        >>> from focal_ref.keras import softmax_focal_loss
        >>> print(f"{float(softmax_focal_loss([[0.0, 0.0]], [0], gamma=0.0)[0]):.4f}")
        0.6931
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
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: AlphaLike = None,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    axis: int = -1,
    ignore_index: int | None = None,
    validate: bool = False,
) -> Tensor:
    r"""Softmax focal loss of probabilities, one per sample; see :func:`focal_ref.categorical_focal_loss`.

    .. math:: \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^{\gamma}\log p_c

    (https://arxiv.org/abs/1708.02002). ``probs`` are used as given: in [0, 1], not renormalised (the
    Keras-style :class:`CategoricalFocalLoss` divides by the sum, as Keras does), not clipped; a zero
    probability on a class with positive target weight gives +inf.

    Args:
        probs: probabilities with a class axis ``axis`` of size C.
        targets: class indices or probabilities, as in :func:`softmax_focal_loss`.
        alpha: ``None``, one number in [0, 1], or C per-class weights in [0, 1].
        gamma: focusing parameter >= 0.
        reduction: ``"none"``, ``"mean"`` (over non-ignored samples) or ``"sum"``.
        axis: the class axis.
        ignore_index: integer targets only: samples with this label give 0 and leave the mean.
        validate: also check probs and targets in range (a sync).

    Returns:
        A tensor of the probs' shape without ``axis`` (``"none"``) or a scalar, in the probs' dtype.

    Raises:
        ValueError: as :func:`softmax_focal_loss`, and (with ``validate``) probs outside [0, 1].
        TypeError: an argument of the wrong type.

    Example:
        >>> from focal_ref.keras import categorical_focal_loss
        >>> print(f"{float(categorical_focal_loss([[0.5, 0.5]], [0], gamma=1.0)[0]):.4f}")
        0.3466
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
