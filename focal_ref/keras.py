"""Focal loss for Keras 3, written only with ``keras.ops`` (tested on the TensorFlow, PyTorch, JAX backends).

Functional versions with the reference's names, argument order and conventions (see
:mod:`focal_ref._reference`; ``alpha`` weights the positive class, softmax class axis ``axis=-1``,
reductions ``"none"``/``"mean"``/``"sum"``; the sigmoid family also takes ``weight``, ``pos_weight`` and
``ignore_index``), and three ``keras.losses.Loss`` classes in Keras style. The math is Lin et al. 2017,
https://arxiv.org/abs/1708.02002.

Layout: ``focal_ref._keras_core`` (input conversion, checks, stable elementwise math),
``focal_ref._keras_functional`` (the five functions), ``focal_ref._keras_losses`` (the Loss classes);
this module is the public one and re-exports them.

Numerics mirror the reference: log space throughout (softplus, log-softmax with the dominant class's
log p written with log1p), 1 - p never formed by subtraction, nothing clipped. Autodiff through these
functions gives finite gradients for every finite logit and every gamma >= 0, gamma < 1 included.

dtypes: float16/bfloat16 inputs are computed in float32 inside and the result is cast back to the
input dtype; float32/float64 are computed as given; integer or bool inputs are cast to
``keras.config.floatx()``.
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
probability-input losses take integer gamma as products and other gamma as ``ops.power`` (whose derivative
gamma m^(gamma-1) keeps the focal term at easy examples, where m^gamma CE underflows); a probability below
the dtype's smallest normal number is read as 0 by the CPU kernels of TensorFlow and XLA (flush to zero).

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

from ._keras_functional import (
    binary_focal_loss,
    categorical_focal_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_star,
    softmax_focal_loss,
)
from ._keras_losses import BinaryFocalLoss, CategoricalFocalLoss, SparseCategoricalFocalLoss

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
