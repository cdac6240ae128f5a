"""Keras's test cases for BinaryFocalCrossentropy and CategoricalFocalCrossentropy, on focal_ref's classes.

Ported from keras-team/keras ``keras/src/losses/losses_test.py`` (``BinaryFocalCrossentropyTest``,
``CategoricalFocalCrossentropyTest``), with Keras's expected numbers and its tolerance (``assertAlmostEqual``
to 3 places, i.e. |diff| < 5e-4, or 4 where Keras asks for 4). Argument mapping, one by one:

* ``BinaryFocalCrossentropy(gamma=g, from_logits=f)`` (``apply_class_balancing=False``: no alpha at all)
  -> ``BinaryFocalLoss(alpha=None, gamma=g, from_logits=f)``;
  ``apply_class_balancing=True, alpha=a`` -> ``alpha=a``; ``label_smoothing=s`` -> ``label_smoothing=s``.
* ``CategoricalFocalCrossentropy(alpha=a, gamma=g, from_logits=f, label_smoothing=s)``
  -> ``CategoricalFocalLoss`` with the same arguments (Keras's default ``alpha=0.25`` is a uniform
  scale: focal_ref's one-number alpha).
* ``sample_weight`` and ``reduction`` go through ``keras.losses.Loss`` unchanged.

Where focal_ref differs on purpose: probabilities are not clipped to [1e-7, 1 - 1e-7], so a zero
probability on a positive gives +inf (Keras: -log 1e-7 = 16.1) and an exactly right prediction gives
exactly 0; the tests at the end assert that difference. Each case is also checked against the float64
reference at a tight tolerance.
Runs on every backend.
"""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402

import focal_ref  # noqa: E402
import focal_ref.keras as fk  # noqa: E402


def _np(tensor):
    return np.asarray(ops.convert_to_numpy(ops.cast(tensor, "float64")), dtype=np.float64)


def _keras_close(out, expected, places=3):
    """Keras's assertAlmostEqual(places) / assertAllClose(rtol=atol=1e-6) criterion."""
    out, expected = np.asarray(out, np.float64), np.asarray(expected, np.float64)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    assert np.all(np.abs(out - expected) < 0.5 * 10.0**-places), (out, expected)


# Keras's binary fixtures
B_TRUE = np.asarray([1, 0, 1, 0]).reshape([2, 2])
B_PROBS = np.asarray([0.9, 0.8, 0.7, 0.2], dtype=np.float32).reshape([2, 2])
B_TRUE_L = np.array([[1, 1, 0], [0, 1, 0]], dtype="float32")
B_LOGITS = np.array([[1.5, -2.7, 2.9], [-3.8, 1.2, -4.5]])
B_SW = np.array([1.2, 3.4]).reshape((2, 1))

BINARY_CASES = [
    # (Keras test, focal_ref kwargs, y_true, y_pred, sample_weight, Keras's expected value, places)
    ("test_unweighted", dict(gamma=2.0), B_TRUE, B_PROBS, None, 0.268, 3),
    ("test_unweighted logits", dict(gamma=3.0, from_logits=True), B_TRUE_L, B_LOGITS, None, 0.799, 3),
    ("test_scalar_weighted", dict(gamma=2.0), B_TRUE, B_PROBS, 1.23, 0.3296, 3),
    ("test_scalar_weighted logits", dict(gamma=3.0, from_logits=True), B_TRUE_L, B_LOGITS, 3.21, 2.565, 3),
    ("test_sample_weighted", dict(gamma=2.0), B_TRUE, B_PROBS, B_SW, 0.34415, 3),
    ("test_sample_weighted logits", dict(gamma=3.0, from_logits=True), B_TRUE_L, B_LOGITS, B_SW, 0.95977, 3),
]


def _binary_reference(kw, y_true, y_pred, sample_weight):
    kw = dict(kw)
    fn = focal_ref.sigmoid_focal_loss if kw.pop("from_logits", False) else focal_ref.binary_focal_loss
    per_sample = fn(np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64), alpha=None, **kw).mean(-1)
    weights = 1.0 if sample_weight is None else np.ravel(sample_weight)
    return np.mean(per_sample * weights)


@pytest.mark.parametrize("case", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
def test_keras_binary_focal_cases(case):
    _, kw, y_true, y_pred, sample_weight, expected, places = case
    out = _np(fk.BinaryFocalLoss(alpha=None, **kw)(y_true, y_pred, sample_weight=sample_weight))
    _keras_close(out, expected, places)
    ref = _binary_reference(kw, y_true, y_pred.astype(np.float32), sample_weight)
    np.testing.assert_allclose(out, ref, rtol=2e-6)


def test_keras_binary_no_reduction_and_class_balancing():
    out = _np(fk.BinaryFocalLoss(alpha=None, gamma=2.0, reduction=None)(B_TRUE, B_PROBS))
    _keras_close(out, (0.515547, 0.020513), places=6)  # Keras: assertAllClose (1e-6)
    # apply_class_balancing=True, alpha=a is focal_ref's alpha=a: compared with Keras's class itself
    for alpha in (0.25, 0.6):
        ours = fk.BinaryFocalLoss(alpha=alpha, gamma=3.0, from_logits=True)(
            B_TRUE_L, B_LOGITS, sample_weight=B_SW
        )
        theirs = keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=alpha, gamma=3.0, from_logits=True
        )(B_TRUE_L, B_LOGITS, sample_weight=B_SW)
        np.testing.assert_allclose(_np(ours), _np(theirs), rtol=2e-6)


def test_keras_binary_label_smoothing_is_keras_s():
    smooth = 0.2
    ours = fk.BinaryFocalLoss(alpha=0.25, gamma=2.0, from_logits=True, label_smoothing=smooth)(
        B_TRUE_L, B_LOGITS
    )
    theirs = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True, label_smoothing=smooth
    )(B_TRUE_L, B_LOGITS)
    np.testing.assert_allclose(_np(ours), _np(theirs), rtol=2e-6)
    soft = B_TRUE_L * (1 - smooth) + 0.5 * smooth
    ref = focal_ref.sigmoid_focal_loss(B_LOGITS, soft, alpha=0.25, gamma=2.0).mean()
    np.testing.assert_allclose(_np(ours), ref, rtol=2e-6)


# Keras's categorical fixtures
C_TRUE = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
C_PROBS = np.array(
    [[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]], dtype="float32"
)  # row 2 sums to 1.99
C_LOGITS = np.array([[8.0, 1.0, 1.0], [0.0, 9.0, 1.0], [2.0, 3.0, 5.0]])
C_SW = np.array([[1.2], [3.4], [5.6]]).reshape((3, 1))

CATEGORICAL_CASES = [
    ("test_unweighted", dict(), C_TRUE, C_PROBS, None, 0.02059, 3),
    ("test_unweighted logits", dict(from_logits=True), C_TRUE, C_LOGITS, None, 0.000345, 3),
    ("test_scalar_weighted", dict(), C_TRUE, C_PROBS, 2.3, 0.047368, 3),
    ("test_scalar_weighted logits", dict(from_logits=True), C_TRUE, C_LOGITS, 2.3, 0.000794, 4),
    ("test_sample_weighted", dict(), C_TRUE, C_PROBS, C_SW, 0.06987, 3),
    ("test_sample_weighted logits", dict(from_logits=True), C_TRUE, C_LOGITS, C_SW, 0.001933, 3),
    (
        "test_label_smoothing",
        dict(from_logits=True, label_smoothing=0.1),
        np.array([[1, 0, 0]]),
        np.array([[4.9, -0.5, 2.05]]),
        None,
        0.06685,
        3,
    ),
]


def _categorical_reference(kw, y_true, y_pred, sample_weight):
    kw = dict(kw)
    smooth = kw.pop("label_smoothing", 0.0)
    targets = np.asarray(y_true, np.float64) * (1 - smooth) + smooth / y_true.shape[-1]
    if kw.pop("from_logits", False):
        per_sample = focal_ref.softmax_focal_loss(y_pred, targets, alpha=0.25, gamma=2.0)
    else:
        probs = np.asarray(y_pred, np.float64)
        per_sample = focal_ref.categorical_focal_loss(
            probs / probs.sum(-1, keepdims=True), targets, alpha=0.25
        )
    weights = 1.0 if sample_weight is None else np.ravel(sample_weight)
    return np.mean(per_sample * weights)


@pytest.mark.parametrize("case", CATEGORICAL_CASES, ids=[c[0] for c in CATEGORICAL_CASES])
def test_keras_categorical_focal_cases(case):
    _, kw, y_true, y_pred, sample_weight, expected, places = case
    out = _np(
        fk.CategoricalFocalLoss(alpha=0.25, gamma=2.0, **kw)(y_true, y_pred, sample_weight=sample_weight)
    )
    _keras_close(out, expected, places)
    ref = _categorical_reference(kw, y_true, y_pred.astype(np.float32), sample_weight)
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_keras_categorical_no_reduction():
    out = _np(fk.CategoricalFocalLoss(alpha=0.25, from_logits=True, reduction=None)(C_TRUE, C_LOGITS))
    expected = (1.5096224e-09, 2.4136547e-11, 1.0360638e-03)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)  # Keras's assertAllClose
    # ours is exact where Keras's float32 1 - softmax cancels: against the float64 reference
    ref = focal_ref.softmax_focal_loss(C_LOGITS.astype(np.float32).astype(np.float64), C_TRUE, alpha=0.25)
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_probability_rows_are_divided_by_their_sum_as_in_keras():
    """Keras divides probability inputs by their sum over the class axis; so does CategoricalFocalLoss."""
    loss = fk.CategoricalFocalLoss(alpha=0.25, reduction=None)
    theirs = keras.losses.CategoricalFocalCrossentropy(reduction=None)
    np.testing.assert_allclose(_np(loss(C_TRUE, C_PROBS)), _np(theirs(C_TRUE, C_PROBS)), rtol=1e-5)
    doubled = _np(loss(C_TRUE, 2.0 * C_PROBS))
    np.testing.assert_allclose(doubled, _np(loss(C_TRUE, C_PROBS)), rtol=1e-6)
    # the functional categorical_focal_loss is the reference's: probabilities used as given
    raw = _np(fk.categorical_focal_loss(C_PROBS, C_TRUE, alpha=0.25))
    np.testing.assert_allclose(
        raw, focal_ref.categorical_focal_loss(C_PROBS.astype(np.float64), C_TRUE, alpha=0.25), rtol=1e-6
    )
    assert abs(raw[1] - _np(loss(C_TRUE, C_PROBS))[1]) > 1e-3  # row 2 sums to 1.99: the two differ there


def test_one_class_axis_warns_as_keras():
    with pytest.warns(SyntaxWarning):
        keras.losses.CategoricalFocalCrossentropy()(np.ones((2, 1)), np.ones((2, 1)))
    for loss, y_true in (
        (fk.CategoricalFocalLoss(), np.ones((2, 1))),
        (fk.SparseCategoricalFocalLoss(), np.zeros((2,))),
    ):
        with pytest.warns(SyntaxWarning, match="num_classes > 1"):
            out = loss(y_true, np.ones((2, 1)))
        assert float(_np(out)) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fk.CategoricalFocalLoss()(C_TRUE, C_PROBS)  # no warning with C > 1


def test_all_correct_and_clipping_differ_on_purpose():
    """Keras clips probabilities to [1e-7, 1 - 1e-7]; focal_ref does not (the math at face value)."""
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="float32")
    # Keras's test_all_correct_unweighted: Keras gives 0 to 3 places (after its clip), focal_ref exactly 0
    assert float(_np(fk.BinaryFocalLoss(alpha=None, gamma=1.5)(y, y))) == 0.0
    _keras_close(_np(keras.losses.BinaryFocalCrossentropy(gamma=1.5)(y, y)), 0.0)
    logits = np.where(y > 0, 100.0, -100.0)
    _keras_close(_np(fk.BinaryFocalLoss(alpha=None, gamma=2.0, from_logits=True)(y, logits)), 0.0)
    assert float(_np(fk.CategoricalFocalLoss(alpha=0.25)(y.astype("int64"), y))) == 0.0
    _keras_close(_np(fk.CategoricalFocalLoss(alpha=0.25, from_logits=True)(y, 10.0 * y)), 0.0)
    # a zero probability on the true class: +inf here, -log(1e-7) weighted in Keras
    wrong = np.array([[0.0, 1.0]], dtype="float32")
    truth = np.array([[1.0, 0.0]], dtype="float32")
    assert np.isinf(_np(fk.BinaryFocalLoss(alpha=None, gamma=0.0)(truth, wrong)))
    clipped = _np(keras.losses.BinaryFocalCrossentropy(gamma=0.0)(truth, wrong))
    assert 15.0 < clipped < 16.2  # about -log(1e-7) = 16.1 per label
    assert np.isinf(_np(fk.CategoricalFocalLoss(gamma=0.0)(truth, wrong)))
    assert np.isfinite(_np(keras.losses.CategoricalFocalCrossentropy(gamma=0.0)(truth, wrong)))


def test_config_round_trip_with_label_smoothing():
    for loss in (fk.BinaryFocalLoss(label_smoothing=0.1), fk.CategoricalFocalLoss(label_smoothing=0.2)):
        clone = type(loss).from_config(loss.get_config())
        assert clone.label_smoothing == loss.label_smoothing
    with pytest.raises(ValueError, match="label_smoothing"):
        fk.BinaryFocalLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="label_smoothing"):
        fk.CategoricalFocalLoss(label_smoothing="0.1")
