"""The ``keras.losses.Loss`` classes of :mod:`focal_ref.keras` (Keras style: ``loss(y_true, y_pred)``).

Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object Detection", https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

import numbers
import warnings

import keras
import numpy as np
from keras import ops
from keras.src.backend.common.masking import set_keras_mask  # what Keras's own losses use (no public alias)

from ._checks import check_binary_alpha, check_class_alpha_spec, check_gamma, check_ignore_index
from ._keras_core import _check_binary_ignore_index, _shape
from ._keras_functional import (
    binary_focal_loss,
    categorical_focal_loss,
    sigmoid_focal_loss,
    softmax_focal_loss,
)

# ----------------------------------------------------------------------------------------------
# Keras Loss classes


def _alpha_config(alpha):
    return list(alpha) if isinstance(alpha, tuple) else alpha


def _check_label_smoothing(label_smoothing) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing must be a number in [0, 1], got {type(label_smoothing).__name__}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _check_pos_weight(pos_weight):
    """``pos_weight`` (None, or real numbers, finite, >= 0) as (the float64 array the functions get, its
    JSON form for ``get_config``); a Python list would reach the functions as floatx (0.1 rounded)."""
    if pos_weight is None:
        return None, None
    if isinstance(pos_weight, bool):
        raise TypeError("pos_weight must be a real number or an array of them, got bool")
    try:
        array = np.asarray(ops.convert_to_numpy(pos_weight) if hasattr(pos_weight, "shape") else pos_weight)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"pos_weight must be a real number or an array of them, got {type(pos_weight).__name__}"
        ) from exc
    if array.dtype.kind not in "iuf":
        raise TypeError(f"pos_weight must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array) & (array >= 0)):
        raise ValueError(f"pos_weight must be finite and >= 0, got {pos_weight!r}")
    return array, array.tolist()


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
    r"""Binary / multi-label focal loss, Keras style: ``loss(y_true, y_pred, sample_weight=None)``.

    Per sample: the mean over the last axis of :func:`sigmoid_focal_loss` (``from_logits=True``) or
    :func:`binary_focal_loss` (probabilities), as ``keras.losses.BinaryFocalCrossentropy`` does
    (Lin et al. 2017, https://arxiv.org/abs/1708.02002):

    .. math::

        \mathrm{FL}_i = \alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE}_i,\qquad
        \mathrm{CE}_i = -[w_+ y_i \log p_i + (1-y_i)\log(1-p_i)]

    with ``pos_weight`` w_+ (1 if ``None``), as ``BCEWithLogitsLoss(pos_weight=)``. The default
    ``"sum_over_batch_size"`` reduction then equals the reference's ``reduction="mean"``. Labels of shape
    ``(n,)`` with predictions ``(n, 1)`` (a ``Dense(1)`` output) are n samples, as in Keras (its
    ``squeeze_or_expand_to_same_rank``).

    Keras's own ``sample_weight`` (at call time, per sample) plays the functions' ``weight``:
    ``loss(y, x, sample_weight=s)`` with ``"sum_over_batch_size"`` is ``sigmoid_focal_loss(x, y,
    weight=s[:, None], reduction="mean")``, ``"sum"`` the function's ``"sum"`` over the size of the last
    axis, ``"none"`` s times each sample's mean. A weight varying within a sample needs the function.

    ``ignore_index`` (e.g. -1): labels equal to it give 0 (also in the gradient) and leave the count. A
    sample's value is the mean over its kept labels; a sample with none is masked out of the mean-like
    reductions (a Keras mask, as ``ignore_class``), and with every label ignored the loss is 0.0. So
    ``"sum_over_batch_size"`` is the reference's ``"mean"`` (sum / number of kept labels) when every sample
    keeps as many labels (one label per sample, or whole samples ignored, as RetinaNet's anchors in the IoU
    band), else the mean over samples of each one's mean (Keras reduces per sample). ``label_smoothing``
    leaves ignored labels alone.

    The same contract as ``focal_ref.torch.BinaryFocalLoss`` (API decision 1): ``from_logits=False`` (the
    default, as Keras) takes probabilities; ``BinaryFocalLoss(from_logits=True)`` equals
    ``focal_ref.torch.SigmoidFocalLoss``.

    Parity with ``keras.losses.BinaryFocalCrossentropy`` (its test cases pass, tests/test_keras_parity.py):
    ``apply_class_balancing=False`` is ``alpha=None``, ``apply_class_balancing=True, alpha=a`` is ``alpha=a``;
    ``label_smoothing`` (towards 1/2), ``sample_weight`` and ``reduction`` act as in Keras. On purpose
    different: probabilities are not clipped to [1e-7, 1 - 1e-7] (a zero probability on a positive gives
    +inf, an exact prediction exactly 0), and 1 - p_t is never formed by subtraction (Keras's is 0 once
    p rounds to 1). Default ``alpha=0.25`` always weights positives (Keras: only with class balancing).

    Args:
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter >= 0.
        from_logits: whether ``y_pred`` holds logits (recommended: exact in log space) or probabilities.
        label_smoothing: in [0, 1]; labels become ``y (1 - s) + s / 2``, as in Keras.
        reduction: as in ``keras.losses.Loss``.
        name: as in ``keras.losses.Loss``.
        dtype: as in ``keras.losses.Loss``.
        pos_weight: w_+ >= 0, finite, broadcastable to ``y_pred`` (typically per class, (C,)); None for 1.
        ignore_index: a finite number outside [0, 1] marking labels to leave out; ``None`` for none.

    Returns:
        Calling the loss returns Keras's reduction of the per-sample values (one per sample with
        ``reduction=None``/``"none"``).

    Raises:
        ValueError: a bad ``alpha``, ``gamma``, ``label_smoothing``, ``reduction``, ``pos_weight`` (its shape
            is checked against ``y_pred`` at each call) or ``ignore_index``.
        TypeError: an argument of the wrong type.

    Example:
        >>> from focal_ref.keras import BinaryFocalLoss
        >>> loss = BinaryFocalLoss(alpha=None, gamma=0.0, from_logits=True)
        >>> print(f"{float(loss([1.0, 0.0], [[0.0], [0.0]])):.4f}")
        0.6931
        >>> loss = BinaryFocalLoss(alpha=None, gamma=0.0, from_logits=True, pos_weight=3.0, ignore_index=-1)
        >>> print(f"{float(loss([[1.0, -1.0]], [[0.0, 9.0]])):.4f}")
        2.0794
    """

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="binary_focal_loss",
        dtype=None,
        pos_weight=None,
        ignore_index=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_binary_alpha(alpha)
        self.gamma = check_gamma(gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)
        self._pos_weight, self.pos_weight = _check_pos_weight(pos_weight)
        self.ignore_index = _check_binary_ignore_index(ignore_index)

    def call(self, y_true, y_pred):
        y_true, y_pred = _squeeze_or_expand(_stacked(y_true), _stacked(y_pred))
        keep = None if self.ignore_index is None else ops.not_equal(y_true, self.ignore_index)
        if self.label_smoothing:  # as Keras: towards 1/2 (ignored labels stay as they are)
            smoothed = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
            y_true = smoothed if keep is None else ops.where(keep, smoothed, y_true)
        fn = sigmoid_focal_loss if self.from_logits else binary_focal_loss
        loss = fn(
            y_pred,
            y_true,
            alpha=self.alpha,
            gamma=self.gamma,
            pos_weight=self._pos_weight,
            ignore_index=self.ignore_index,
        )
        # sum / n, not ops.mean: Keras 3.15's torch backend computes ops.mean of float64 in float32.
        if keep is None:
            return ops.sum(loss, axis=-1) / ops.cast(ops.shape(loss)[-1], loss.dtype)
        kept = ops.sum(ops.cast(keep, loss.dtype), axis=-1)
        per_sample = ops.sum(loss, axis=-1) / ops.maximum(kept, 1.0)
        # a sample with no kept label leaves the mean-like reductions' count (as Keras's ignore_class)
        set_keras_mask(per_sample, mask=kept > 0)
        return per_sample

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha,
            gamma=self.gamma,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
            pos_weight=self.pos_weight,
            ignore_index=self.ignore_index,
        )
        return config


@keras.saving.register_keras_serializable(package="focal_ref")
class CategoricalFocalLoss(keras.losses.Loss):
    """Softmax focal loss with one-hot or soft ``y_true`` (the shape of ``y_pred``), Keras style.

    Per sample: :func:`softmax_focal_loss` (``from_logits=True``) or :func:`categorical_focal_loss` of the
    probabilities divided by their sum over ``axis`` (as Keras's ``CategoricalFocalCrossentropy`` does);
    ``"sum_over_batch_size"`` equals the reference's ``"mean"`` (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002).

    The same contract as ``focal_ref.torch.CategoricalFocalLoss`` (API decision 1): ``from_logits=False``
    (the default, as Keras) takes probabilities; ``CategoricalFocalLoss(from_logits=True)`` equals
    ``focal_ref.torch.SoftmaxFocalLoss``.

    Parity with ``keras.losses.CategoricalFocalCrossentropy`` (its own test cases pass with ``alpha=0.25``,
    tests/test_keras_parity.py): Keras's ``alpha`` is a uniform scale, focal_ref's one-number ``alpha``;
    ``label_smoothing`` (towards 1/C), ``sample_weight``, ``reduction``, the division by the sum and the
    ``SyntaxWarning`` for a class axis of size 1 are Keras's. On purpose different: no clipping to
    [1e-7, 1 - 1e-7] (a zero probability on the true class gives +inf, an exact prediction exactly 0), and
    the default ``alpha=None`` (Keras: 0.25).

    Args:
        alpha: ``None``, one weight for every class, or C per-class weights in [0, 1].
        gamma: focusing parameter >= 0.
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        axis: the class axis.
        label_smoothing: in [0, 1]; targets become ``y (1 - s) + s / C``, as in Keras.
        reduction: as in ``keras.losses.Loss``.
        name: as in ``keras.losses.Loss``.
        dtype: as in ``keras.losses.Loss``.

    Returns:
        Calling the loss returns Keras's reduction of the per-sample values.

    Raises:
        ValueError: a bad ``alpha``, ``gamma``, ``label_smoothing`` or ``reduction``.
        TypeError: an argument of the wrong type (a set or dict ``alpha`` has no class order).

    Example:
        >>> from focal_ref.keras import CategoricalFocalLoss
        >>> loss = CategoricalFocalLoss(gamma=0.0, from_logits=True)
        >>> print(f"{float(loss([[1.0, 0.0]], [[0.0, 0.0]])):.4f}")
        0.6931
    """

    def __init__(
        self,
        alpha=None,
        gamma=2.0,
        from_logits=False,
        axis=-1,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="categorical_focal_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):  # its range: at each call
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")
        self.alpha = check_class_alpha_spec(alpha)
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
            alpha=_alpha_config(self.alpha),
            gamma=self.gamma,
            from_logits=self.from_logits,
            axis=self.axis,
            label_smoothing=self.label_smoothing,
        )
        return config


@keras.saving.register_keras_serializable(package="focal_ref")
class SparseCategoricalFocalLoss(CategoricalFocalLoss):
    """Softmax focal loss with integer class labels ``y_true`` (Keras has no built-in focal one).

    ``y_true`` has the shape of ``y_pred`` without the class axis (a trailing axis of size 1 is dropped,
    as Keras does). Probabilities are used as given (no division by their sum). Samples labelled
    ``ignore_index`` give 0 and leave the ``"sum_over_batch_size"``/``"mean"`` denominator, so that
    reduction equals the reference's ``"mean"``. They are marked as Keras's ``ignore_class`` marks them,
    with a Keras mask on the per-sample loss, so a mask on ``y_pred`` (``Embedding(mask_zero=True)``) and
    ``ignore_index`` together count each sample once. ``from_logits=True`` equals
    ``focal_ref.torch.SoftmaxFocalLoss`` with integer targets (https://arxiv.org/abs/1708.02002).

    Args:
        alpha: ``None``, one weight for every class, or C per-class weights in [0, 1].
        gamma: focusing parameter >= 0.
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        axis: the class axis.
        ignore_index: a label whose samples are left out; ``None`` for none.
        reduction: as in ``keras.losses.Loss``.
        name: as in ``keras.losses.Loss``.
        dtype: as in ``keras.losses.Loss``.

    Returns:
        Calling the loss returns Keras's reduction of the per-sample values.

    Raises:
        ValueError: a bad ``alpha``, ``gamma`` or ``reduction``.
        TypeError: an argument of the wrong type.

    Example:
        >>> from focal_ref.keras import SparseCategoricalFocalLoss
        >>> loss = SparseCategoricalFocalLoss(gamma=0.0, from_logits=True, ignore_index=-1)
        >>> print(f"{float(loss([0, -1], [[0.0, 0.0], [5.0, 0.0]])):.4f}")
        0.6931
    """

    def __init__(
        self,
        alpha=None,
        gamma=2.0,
        from_logits=False,
        axis=-1,
        ignore_index=None,
        reduction="sum_over_batch_size",
        name="sparse_categorical_focal_loss",
        dtype=None,
    ):
        super().__init__(
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            axis=axis,
            reduction=reduction,
            name=name,
            dtype=dtype,
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
        # integer labels: no smoothing (Keras's SparseCategoricalCrossentropy has none)
        config.pop("label_smoothing")
        config.update(ignore_index=self.ignore_index)
        return config
