"""Keras's built-in focal losses (TensorFlow backend) against the reference: where conventions meet or not.

Read from keras/src/losses/losses.py (Keras 3.15) and keras/src/backend/tensorflow/nn.py:

``binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
from_logits=False, label_smoothing=0.0, axis=-1)``
  * from_logits: ``y_pred = sigmoid(y_pred)`` first. CE = ``ops.binary_crossentropy(y_true, y_pred)``; on the
    TensorFlow backend that recovers the logits from a sigmoid output (``_keras_logits``) and uses the stable
    ``sigmoid_cross_entropy_with_logits``; a plain probability tensor is clipped to [1e-7, 1 - 1e-7] first.
  * the focal factor is ``(1 - p_t)**gamma`` with ``p_t = y p + (1-y)(1-p)`` formed from the probabilities:
    1 - p_t cancels to exactly 0 once p rounds to 1 (|x| >~ 17 in float32, 37 in float64).
  * ``weight = y alpha + (1-y)(1-alpha)`` only with ``apply_class_balancing=True`` (else no alpha at all).
  * returns the mean over the last axis.
  Mapping: ``bfc(y, x, apply_class_balancing=True, alpha=a, gamma=g, from_logits=True)``
  = ``mean(focal_ref.sigmoid_focal_loss(x, y, alpha=a, gamma=g), axis=-1)``; without class balancing,
  ``alpha=None``; ``label_smoothing=s`` is the reference with soft targets ``y (1-s) + s/2``.

``categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
label_smoothing=0.0, axis=-1)``
  * from_logits: ``y_pred = softmax(y_pred)``; then always renormalised (``y_pred / sum``) and clipped to
    [1e-7, 1 - 1e-7]; CE = ``-y log p``, factor ``(1 - p)**gamma``, summed over the class axis.
  * ``alpha`` multiplies every class term (``ops.multiply``): one uniform scale, not the binary
    alpha / (1 - alpha) balancing. A length-C array broadcasts over the class axis, i.e. per-class weights
    (undocumented, but it is the reference's per-class alpha).
  Mapping: ``cfc(y, x, alpha=a, gamma=g, from_logits=True)`` = ``focal_ref.softmax_focal_loss(x, y, alpha=a,
  gamma=g)`` while every p_c stays inside the clip; ``label_smoothing=s`` is the soft target
  ``y (1-s) + s/C``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

if keras.backend.backend() != "tensorflow":
    pytest.skip(
        "Keras's built-in focal losses are compared on the TensorFlow backend only (their CE goes through "
        "backend-specific logits recovery)",
        allow_module_level=True,
    )

from keras import ops  # noqa: E402

import focal_ref  # noqa: E402
import focal_ref.keras as fk  # noqa: E402

bfc = keras.losses.binary_focal_crossentropy
cfc = keras.losses.categorical_focal_crossentropy
EPS = keras.config.epsilon()  # 1e-7, Keras's clip
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
RTOL = (
    1e-11  # float64; the built-ins' 1 - sigmoid(x) costs up to eps / (1 - p) ~ 3e-13 at |x| = 8, times gamma
)


def _np(tensor):
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def _moderate_sigmoid_case(seed=0):
    """|x| <= 8: p stays well inside Keras's [1e-7, 1 - 1e-7] clip and 1 - p keeps 12+ digits."""
    rng = np.random.default_rng(seed)
    logits = np.clip(rng.normal(0.0, 3.0, (64, 3)), -8.0, 8.0)
    hard = rng.integers(0, 2, (64, 3)).astype(np.float64)
    soft = rng.uniform(size=(64, 3))
    return logits, np.where(rng.uniform(size=(64, 3)) < 0.5, hard, soft)


def _moderate_softmax_case(seed=1, num_classes=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (64, num_classes))  # every p_c > 1e-7 (checked below)
    onehot = np.eye(num_classes)[rng.integers(0, num_classes, 64)]
    soft = rng.dirichlet(np.ones(num_classes), 64)
    return logits, onehot, soft


# ----------------------------------------------------------------------------------------------
# binary_focal_crossentropy


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_builtin_matches_reference_with_class_balancing(gamma):
    logits, targets = _moderate_sigmoid_case()
    for alpha in (0.0, 0.25, 0.5, 1.0):
        keras_loss = _np(
            bfc(targets, logits, apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True)
        )
        ref = focal_ref.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma).mean(axis=-1)
        np.testing.assert_allclose(keras_loss, ref, rtol=RTOL, atol=1e-300)
        # our Keras class has the same per-sample convention (mean over the last axis)
        ours = _np(
            fk.BinaryFocalLoss(alpha=alpha, gamma=gamma, from_logits=True, reduction="none")(targets, logits)
        )
        np.testing.assert_allclose(ours, ref, rtol=1e-5)  # the Loss class computes in float32
    # no class balancing: Keras applies no alpha at all, the reference's alpha=None
    keras_loss = _np(bfc(targets, logits, gamma=gamma, from_logits=True))
    np.testing.assert_allclose(
        keras_loss,
        focal_ref.sigmoid_focal_loss(logits, targets, alpha=None, gamma=gamma).mean(axis=-1),
        rtol=RTOL,
    )


def test_binary_builtin_label_smoothing_is_a_soft_target():
    logits, targets = _moderate_sigmoid_case(seed=2)
    smooth = 0.1
    keras_loss = _np(
        bfc(targets, logits, apply_class_balancing=True, gamma=2.0, from_logits=True, label_smoothing=smooth)
    )
    ref = focal_ref.sigmoid_focal_loss(logits, targets * (1 - smooth) + 0.5 * smooth, gamma=2.0).mean(axis=-1)
    np.testing.assert_allclose(keras_loss, ref, rtol=RTOL)


def test_binary_builtin_loses_easy_examples_to_cancellation():
    """1 - p_t is formed as 1 - sigmoid(x): it rounds to 0 once p does, so easy examples get exactly 0 loss.

    (In float32 at |x| = 17 the built-in gives 1 - p_t = 2^-24 for the negative instead of e^-17: 44% off.)
    """
    for dtype, x in (("float64", 40.0), ("float32", 20.0)):
        logits = np.array([[x, -x]], dtype=dtype)
        targets = np.array([[1.0, 0.0]], dtype=dtype)  # both easy: p_t -> 1
        keras_loss = _np(bfc(targets, logits, apply_class_balancing=True, gamma=2.0, from_logits=True))
        ref = focal_ref.sigmoid_focal_loss(logits.astype(np.float64), targets, gamma=2.0)
        assert keras_loss[0] == 0.0 and np.all(ref > 0)
        ours = _np(fk.sigmoid_focal_loss(logits, targets, gamma=2.0))  # log space: no cancellation
        np.testing.assert_allclose(ours, ref, rtol=1e-5 if dtype == "float32" else 1e-13)
    # just below the cliff the built-in keeps only a few digits: 1 - p carries the rounding of p
    logits = np.array([[14.0]])
    keras_loss = _np(bfc([[1.0]], logits, apply_class_balancing=True, gamma=2.0, from_logits=True))
    ref = focal_ref.sigmoid_focal_loss(logits, [[1.0]], gamma=2.0)[0]
    rel = abs(keras_loss[0] - ref[0]) / ref[0]
    assert 1e-12 < rel < 1e-8, rel


def test_binary_builtin_clips_probabilities():
    """Probability input: CE is computed from p clipped to [1e-7, 1 - 1e-7], so -log 0 becomes -log 1e-7."""
    probs = np.array([[0.0, 1.0, 0.3]])
    targets = np.array([[1.0, 0.0, 1.0]])
    keras_loss = _np(bfc(targets, probs, apply_class_balancing=True, alpha=0.25, gamma=2.0))
    clipped_ce = -np.log(EPS)
    expected = (
        0.25 * 1.0 * clipped_ce
        + 0.75 * 1.0 * clipped_ce
        + focal_ref.binary_focal_loss([0.3], [1.0], alpha=0.25, gamma=2.0)[0]
    ) / 3
    np.testing.assert_allclose(keras_loss, [expected], rtol=1e-9)  # the clip at 1 - 1e-7 costs ~1e-10
    assert np.all(np.isinf(focal_ref.binary_focal_loss(probs[0, :2], targets[0, :2], alpha=0.25)))  # the math
    assert np.all(np.isinf(_np(fk.binary_focal_loss(probs[0, :2], targets[0, :2], alpha=0.25))))  # ours too


def test_binary_builtin_recovers_logits_from_a_sigmoid_output():
    """TensorFlow backend: the same probabilities give a different CE depending on where the tensor came from.

    An ``ops.sigmoid`` output carries its logits (``_keras_logits``) and ``binary_crossentropy`` uses them
    (exact, unclipped); a plain tensor of the same values is clipped at 1e-7.
    """
    logits = np.array([[-40.0]])
    from_sigmoid = ops.sigmoid(ops.convert_to_tensor(logits))
    plain = ops.convert_to_tensor(_np(from_sigmoid))
    no_focus = dict(apply_class_balancing=False, gamma=0.0)
    assert _np(bfc([[1.0]], from_sigmoid, **no_focus))[0] == pytest.approx(40.0, rel=1e-12)  # softplus(40)
    assert _np(bfc([[1.0]], plain, **no_focus))[0] == pytest.approx(-np.log(EPS), rel=1e-12)
    assert focal_ref.sigmoid_focal_loss(logits, [[1.0]], alpha=None, gamma=0.0)[0, 0] == pytest.approx(40.0)


# ----------------------------------------------------------------------------------------------
# categorical_focal_crossentropy


@pytest.mark.parametrize("gamma", GAMMAS)
def test_categorical_builtin_matches_reference_as_a_uniform_alpha(gamma):
    logits, onehot, soft = _moderate_softmax_case()
    probs = _np(ops.softmax(ops.convert_to_tensor(logits)))
    assert probs.min() > 10 * EPS and probs.max() < 1 - 10 * EPS  # the clip is inactive here
    for targets in (onehot, soft):
        for alpha in (0.25, 1.0):
            keras_loss = _np(cfc(targets, logits, alpha=alpha, gamma=gamma, from_logits=True))
            ref = focal_ref.softmax_focal_loss(logits, targets, alpha=alpha, gamma=gamma)
            np.testing.assert_allclose(keras_loss, ref, rtol=RTOL)
        # alpha only scales: the loss at alpha is alpha times the loss at 1, for every class alike
        np.testing.assert_allclose(
            _np(cfc(targets, logits, alpha=0.25, gamma=gamma, from_logits=True)),
            0.25 * focal_ref.softmax_focal_loss(logits, targets, alpha=None, gamma=gamma),
            rtol=RTOL,
        )
        # probability input (renormalising a distribution that sums to 1 changes nothing but rounding)
        keras_loss = _np(cfc(targets, probs, alpha=1.0, gamma=gamma))
        np.testing.assert_allclose(
            keras_loss, focal_ref.categorical_focal_loss(probs, targets, alpha=None, gamma=gamma), rtol=RTOL
        )


def test_categorical_builtin_alpha_array_broadcasts_to_per_class_weights():
    logits, onehot, soft = _moderate_softmax_case(seed=3)
    weights = np.array([0.1, 0.25, 0.5, 0.75, 1.0])
    for targets in (onehot, soft):
        keras_loss = _np(cfc(targets, logits, alpha=weights, gamma=2.0, from_logits=True))
        np.testing.assert_allclose(
            keras_loss, focal_ref.softmax_focal_loss(logits, targets, alpha=weights, gamma=2.0), rtol=RTOL
        )


def test_categorical_alpha_is_not_binary_balancing():
    """Two classes: the binary alpha_t is the per-class alpha (1 - a, a); Keras's scalar a is uniform."""
    rng = np.random.default_rng(4)
    z = np.clip(rng.normal(0.0, 3.0, 32), -8.0, 8.0)
    labels = rng.integers(0, 2, 32)
    logits = np.stack([np.zeros_like(z), z], axis=-1)  # softmax([0, z]) = (1 - sigmoid z, sigmoid z)
    binary = focal_ref.sigmoid_focal_loss(z, labels.astype(np.float64), alpha=0.25, gamma=2.0)
    ours = focal_ref.softmax_focal_loss(logits, labels, alpha=[0.75, 0.25], gamma=2.0)
    np.testing.assert_allclose(ours, binary, rtol=1e-12)
    keras_loss = _np(cfc(np.eye(2)[labels], logits, alpha=0.25, gamma=2.0, from_logits=True))
    np.testing.assert_allclose(
        keras_loss,
        0.25 * focal_ref.sigmoid_focal_loss(z, labels.astype(np.float64), alpha=None, gamma=2.0),
        rtol=RTOL,
    )
    negatives = labels == 0
    assert np.all(keras_loss[negatives] < binary[negatives])  # negatives get 0.25, not 1 - 0.25


def test_categorical_builtin_label_smoothing_is_a_soft_target():
    logits, onehot, _ = _moderate_softmax_case(seed=5)
    smooth = 0.1
    keras_loss = _np(cfc(onehot, logits, alpha=1.0, gamma=2.0, from_logits=True, label_smoothing=smooth))
    ref = focal_ref.softmax_focal_loss(logits, onehot * (1 - smooth) + smooth / 5, gamma=2.0)
    np.testing.assert_allclose(keras_loss, ref, rtol=RTOL)


def test_categorical_builtin_clips_at_saturation():
    """Saturated rows: Keras's clip floors easy losses and caps hard ones; the reference and ours do not."""
    big = 40.0
    logits = np.array([[big, 0.0, 0.0, 0.0, 0.0], [-big, 0.0, 0.0, 0.0, 0.0]])
    targets = np.array([[1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0]])
    keras_loss = _np(cfc(targets, logits, alpha=1.0, gamma=2.0, from_logits=True))
    ref = focal_ref.softmax_focal_loss(logits, targets, gamma=2.0)
    # easy row: p_0 = 1 - 4e^-40 is clipped to 1 - 1e-7, so the loss floors at (1e-7)^2 * -log(1 - 1e-7)
    assert keras_loss[0] == pytest.approx(EPS**2 * -np.log1p(-EPS), rel=1e-6)
    assert ref[0] < 1e-25 * keras_loss[0]  # ~ (4 e^-40)^3 = 5e-51
    # hard row: p_0 ~ e^-40 / 4 is clipped up to 1e-7, so CE is capped at -log 1e-7 ~ 16.1 instead of ~41.4
    assert keras_loss[1] == pytest.approx(-np.log(EPS) * (1 - EPS) ** 2, rel=1e-6)
    assert ref[1] == pytest.approx(big + np.log(4.0 + np.exp(-big)), rel=1e-12)
    np.testing.assert_allclose(_np(fk.softmax_focal_loss(logits, targets, gamma=2.0)), ref, rtol=1e-13)


def test_categorical_builtin_renormalises_probabilities():
    """Keras divides probabilities by their sum; the reference (and ours) use them as given."""
    probs = np.array([[0.2, 0.2]])
    targets = np.array([[1.0, 0.0]])
    keras_loss = _np(cfc(targets, probs, alpha=1.0, gamma=2.0))
    assert keras_loss[0] == pytest.approx(0.5**2 * np.log(2.0), rel=1e-12)
    assert focal_ref.categorical_focal_loss(probs, targets, gamma=2.0)[0] == pytest.approx(
        0.8**2 * -np.log(0.2)
    )
