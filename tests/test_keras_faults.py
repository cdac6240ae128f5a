# ruff: noqa: B023  (the lambdas in loops are called at once, inside the loop)
"""Regression tests for the focal_ref.keras faults of issue 16, on whatever backend KERAS_BACKEND selects.

Each test failed before its fix, on every backend where the fault showed (run this module three times, as
tests/test_keras.py: TensorFlow, KERAS_BACKEND=torch, KERAS_BACKEND=jax with JAX_ENABLE_X64=1).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402

import focal_ref  # noqa: E402
import focal_ref.keras as fk  # noqa: E402

BACKEND = keras.backend.backend()


def _np(tensor):
    return np.asarray(ops.convert_to_numpy(ops.cast(tensor, "float64")), dtype=np.float64)


def _binary_case(n=12, seed=0):
    rng = np.random.default_rng(seed)
    logits = np.clip(rng.normal(0.0, 2.0, n), -6.0, 6.0)  # inside Keras's 1e-7 clip: Keras is exact here
    labels = (rng.uniform(size=n) < 0.4).astype(np.float32)
    weights = rng.uniform(0.1, 2.0, n).astype(np.float32)
    return logits.astype(np.float32), labels, weights


# ----------------------------------------------------------------------------------------------
# BinaryFocalLoss: labels (n,) with a Dense(1) output (n, 1) are n samples, as in Keras


@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_rank1_labels_with_dense1_predictions_are_per_sample(from_logits):
    logits, labels, weights = _binary_case()
    y_pred = (logits if from_logits else 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    y_pred = y_pred[:, None]  # (n, 1): Dense(1)
    ref = focal_ref.sigmoid_focal_loss(logits.astype(np.float64), labels, alpha=0.25, gamma=2.0)  # (n,)
    for reduction, sw, expected in (
        (None, None, ref[:, None].mean(-1)),
        ("none", weights, ref * weights),
        ("sum", None, ref.sum()),
        ("sum", weights, (ref * weights).sum()),
        ("sum_over_batch_size", weights, (ref * weights).mean()),
        ("mean_with_sample_weight", weights, (ref * weights).sum() / weights.sum()),
    ):
        ours = fk.BinaryFocalLoss(alpha=0.25, gamma=2.0, from_logits=from_logits, reduction=reduction)
        theirs = keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=from_logits, reduction=reduction
        )
        out = _np(ours(labels, y_pred, sample_weight=sw))
        np.testing.assert_allclose(out, expected, rtol=2e-5, err_msg=str(reduction))
        np.testing.assert_allclose(out, _np(theirs(labels, y_pred, sample_weight=sw)), rtol=2e-5)


def test_binary_fit_with_class_weight_matches_keras():
    """fit(class_weight=...) with Dense(1) and 1-D labels optimizes Keras's own BinaryFocalCrossentropy."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(64, 3)).astype(np.float32)
    labels = (features[:, 0] + 0.3 * rng.normal(size=64) > 1.0).astype(np.float32)  # (n,), imbalanced
    final = []
    for loss in (
        fk.BinaryFocalLoss(alpha=0.25, gamma=2.0, from_logits=True),
        keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True
        ),
    ):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss, jit_compile=False)
        model.fit(
            features,
            labels,
            epochs=2,
            batch_size=16,
            class_weight={0: 1.0, 1: 100.0},
            verbose=0,
            shuffle=False,
        )
        final.append(np.concatenate([np.ravel(ops.convert_to_numpy(w)) for w in model.weights]))
    np.testing.assert_allclose(final[0], final[1], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# SparseCategoricalFocalLoss(ignore_index) with a Keras mask counts each sample once


def _masked_sequence_case():
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, 6, (8, 5))
    tokens[:, 3:] = 0  # padding: Embedding(mask_zero=True) masks it
    tokens[0, :] = [1, 2, 0, 0, 0]
    labels = rng.integers(0, 3, (8, 5))
    labels[1, 0] = labels[4, 2] = labels[6, 1] = -1  # ignored, inside the unmasked part
    labels[2, 4] = -1  # ignored and masked
    return tokens, labels


def test_sparse_ignore_index_with_keras_mask_counts_samples_once():
    tokens, labels = _masked_sequence_case()
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(5,), dtype="int32")
    hidden = keras.layers.Embedding(6, 4, mask_zero=True)(inputs)
    outputs = keras.layers.Dense(3)(hidden)
    model = keras.Model(inputs, outputs)
    logits = _np(model(tokens))
    kept = (tokens != 0) & (labels != -1)
    ce = focal_ref.softmax_focal_loss(logits, np.where(labels == -1, 0, labels), alpha=None, gamma=0.0)
    expected = ce[kept].mean()
    results = {}
    for name, loss in (
        ("ours", fk.SparseCategoricalFocalLoss(alpha=None, gamma=0.0, from_logits=True, ignore_index=-1)),
        ("keras", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)),
    ):
        model.compile(loss=loss, jit_compile=False)
        results[name] = model.evaluate(tokens, labels, batch_size=8, verbose=0)
    assert results["keras"] == pytest.approx(expected, rel=1e-5)
    assert results["ours"] == pytest.approx(expected, rel=1e-5)
    # focal (gamma = 2): the same count of kept samples
    focal = focal_ref.softmax_focal_loss(logits, np.where(labels == -1, 0, labels), alpha=None, gamma=2.0)
    model.compile(loss=fk.SparseCategoricalFocalLoss(from_logits=True, ignore_index=-1), jit_compile=False)
    assert model.evaluate(tokens, labels, batch_size=8, verbose=0) == pytest.approx(
        focal[kept].mean(), rel=1e-5
    )


# ----------------------------------------------------------------------------------------------
# every input type: tf.Variable, keras.Variable, NumPy, lists, the backend's own arrays


def _native_inputs(values):
    variable = keras.Variable(values, trainable=values.dtype.kind == "f")  # torch: no grad for integers
    out = {"numpy": values, "list": values.tolist(), "keras.Variable": variable}
    if BACKEND == "tensorflow":
        import tensorflow as tf

        out["tf.Variable"] = tf.Variable(values)
        out["tf.Tensor"] = tf.constant(values)
    elif BACKEND == "jax":
        import jax.numpy as jnp

        out["jax.Array"] = jnp.asarray(values)
    else:
        import torch

        out["torch.Tensor"] = torch.tensor(values)
    return out


def test_every_function_and_class_accepts_variables_and_arrays():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, (4, 3))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    hard = (logits > 0).astype(np.float64)
    labels = np.array([0, 2, 1, 1])
    onehot = np.eye(3)[labels]
    cases = [
        (fk.sigmoid_focal_loss, logits, hard, focal_ref.sigmoid_focal_loss),
        (fk.sigmoid_focal_loss_star, logits, hard, focal_ref.sigmoid_focal_loss_star),
        (fk.binary_focal_loss, probs, hard, focal_ref.binary_focal_loss),
        (fk.softmax_focal_loss, logits, labels, focal_ref.softmax_focal_loss),
        (fk.softmax_focal_loss, logits, onehot, focal_ref.softmax_focal_loss),
        (fk.categorical_focal_loss, probs, labels, focal_ref.categorical_focal_loss),
        (fk.categorical_focal_loss, probs, onehot, focal_ref.categorical_focal_loss),
    ]
    for fn, x, t, ref_fn in cases:
        ref = ref_fn(x, t)
        for kind, value in _native_inputs(x).items():
            for t_kind, target in _native_inputs(t).items():
                out = fn(value, target)
                expected, rtol = ref, 1e-12
                if kind == "list" or t_kind == "list":  # lists of floats are floatx (float32): the reference
                    rounded = [
                        v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" and k == "list" else v
                        for v, k in ((x, kind), (t, t_kind))
                    ]
                    expected, rtol = ref_fn(*rounded), 1e-5  # sees the same rounded values
                np.testing.assert_allclose(
                    _np(out), expected, rtol=rtol, err_msg=f"{fn.__name__} {kind} {t_kind}"
                )
    classes = [
        (fk.BinaryFocalLoss(from_logits=True), hard, logits),
        (fk.CategoricalFocalLoss(from_logits=True), onehot, logits),
        (fk.SparseCategoricalFocalLoss(from_logits=True, ignore_index=-1), labels, logits),
    ]
    for loss, y_true, y_pred in classes:
        expected = _np(loss(y_true, y_pred))
        for kind, value in _native_inputs(y_pred).items():
            for t_kind, target in _native_inputs(y_true).items():
                np.testing.assert_allclose(
                    _np(loss(target, value)), expected, rtol=1e-6, err_msg=f"{kind} {t_kind}"
                )


def test_python_lists_of_floats_become_floatx_on_every_backend():
    out = fk.sigmoid_focal_loss([0.5, -1.0], [1.0, 0.0])
    assert keras.backend.standardize_dtype(out.dtype) == keras.config.floatx()


# ----------------------------------------------------------------------------------------------
# narrow unsigned labels and a negative ignore_index


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "int64"])
def test_ignore_index_is_compared_without_wrapping(dtype):
    num_classes = 200 if dtype in ("uint8", "int16", "uint16", "int32", "int64") else 100
    logits = np.zeros((3, num_classes))
    logits[:, 2] = 4.0
    wrapped = (-100) % 256 if dtype == "uint8" else 0  # the class that -100 becomes in uint8
    labels = np.array([wrapped, 3, 2]).astype(dtype)
    out = _np(fk.softmax_focal_loss(logits, labels, ignore_index=-100, gamma=2.0))
    ref = focal_ref.softmax_focal_loss(logits, labels.astype(np.int64), ignore_index=-100, gamma=2.0)
    assert out[0] > 0  # a real class is never ignored
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    out = _np(
        fk.categorical_focal_loss(np.full((3, num_classes), 1.0 / num_classes), labels, ignore_index=-100)
    )
    assert np.all(out > 0)


# ----------------------------------------------------------------------------------------------
# float32 gradient of the probability-input loss at tiny p keeps the focal term


def _grad(fn, values, dtype):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(values, dtype=dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return _np(tape.gradient(total, x))
    if BACKEND == "torch":
        import torch

        x = torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=True)
        fn(x).sum().backward()
        return _np(x.grad)
    import jax
    import jax.numpy as jnp

    return _np(jax.grad(lambda v: jnp.sum(fn(v)))(jnp.asarray(values, dtype=dtype)))


@pytest.mark.parametrize("gamma", [1.0, 2.0, 3.0])
def test_float32_probability_gradient_keeps_the_focal_term_at_tiny_p(gamma):
    """For an easy negative, dFL/dp = (1-alpha)(gamma+1) p^gamma (1 + O(p)); autodiff of exp(gamma log p)
    formed CE * p^gamma (about p^(gamma+1), below float32's smallest normal at p = 1e-16) before dividing by
    p, and returned (1-alpha) p^gamma: the focal term gamma p^(gamma-1) CE was lost."""
    probs = np.array([1e-16, 1e-12, 1e-9, 1e-5], dtype=np.float32).astype(np.float64)
    probs = probs[probs**gamma > 1e-35]  # the gradient itself is a normal float32
    targets = np.zeros(probs.size)
    grad = _grad(lambda v: fk.binary_focal_loss(v, targets.astype(np.float32), gamma=gamma), probs, "float32")
    logits = np.log(probs) - np.log1p(-probs)
    ref = focal_ref.sigmoid_focal_loss_grad(logits, targets, gamma=gamma) / (probs * (1.0 - probs))
    np.testing.assert_allclose(grad, ref, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# upstream: Keras's mean-like reduction on the torch backend returns float32 for a float64 loss


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean", "sum", "none"])
def test_float64_loss_classes_dtype_as_documented(reduction):
    """Keras 3.15's torch backend: ops.divide_no_nan promotes float64 with a Python float to float32, so
    Loss's "sum_over_batch_size"/"mean" reductions return float32 (rounded once from the float64 sum);
    "sum" and "none" stay float64. TensorFlow and JAX (x64) keep float64. Documented in focal_ref.keras."""
    rng = np.random.default_rng(5)
    logits = rng.normal(0.0, 3.0, (6, 3))
    onehot = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    ref = focal_ref.softmax_focal_loss(logits, onehot, alpha=None, gamma=2.0)
    expected = {"sum_over_batch_size": ref.mean(), "mean": ref.mean(), "sum": ref.sum(), "none": ref}[
        reduction
    ]
    for loss, y_true in (
        (fk.CategoricalFocalLoss(from_logits=True, dtype="float64", reduction=reduction), onehot),
        (
            fk.SparseCategoricalFocalLoss(from_logits=True, dtype="float64", reduction=reduction),
            np.argmax(onehot, -1),
        ),
    ):
        out = loss(y_true, logits)
        dtype = keras.backend.standardize_dtype(out.dtype)
        downcast = BACKEND == "torch" and reduction in ("sum_over_batch_size", "mean")
        assert dtype == ("float32" if downcast else "float64")
        np.testing.assert_allclose(_np(out), expected, rtol=1e-7 if downcast else 1e-13)


# ----------------------------------------------------------------------------------------------
# API decision 2: weight, pos_weight and ignore_index on the sigmoid family (against the reference)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_weight_pos_weight_ignore_index_match_reference(dtype):
    rng = np.random.default_rng(6)
    logits = rng.normal(0.0, 4.0, (8, 3))
    logits[0, 0], logits[1, 1] = 40.0, -40.0
    targets = np.where(rng.uniform(size=(8, 3)) < 0.5, rng.integers(0, 2, (8, 3)), rng.uniform(size=(8, 3)))
    targets[2, :] = -1.0  # ignored
    targets[3, 1] = -1.0
    weight = rng.uniform(0.0, 2.0, (8, 1))
    pos_weight = np.array([0.5, 1.0, 3.0])
    x = logits.astype(dtype).astype(np.float64)
    probs = 1.0 / (1.0 + np.exp(-x))
    rtol = 1e-12 if dtype == "float64" else 2e-5
    for kw in (
        dict(weight=weight),
        dict(pos_weight=pos_weight),
        dict(ignore_index=-1.0),
        dict(weight=weight, pos_weight=pos_weight, ignore_index=-1.0),
    ):
        for gamma in (0.0, 0.5, 2.0):
            for reduction in ("none", "mean", "sum"):
                args = dict(kw, gamma=gamma, reduction=reduction)
                y = targets if "ignore_index" in kw else np.where(targets < 0, 0.0, targets)
                out = _np(fk.sigmoid_focal_loss(x.astype(dtype), y.astype(dtype), **args))
                ref = focal_ref.sigmoid_focal_loss(x, y.astype(dtype).astype(np.float64), **args)
                np.testing.assert_allclose(out, ref, rtol=rtol, atol=1e-30, err_msg=str((kw.keys(), gamma)))
                if dtype == "float64":
                    out = _np(fk.binary_focal_loss(probs, y, **args))
                    ref = focal_ref.binary_focal_loss(probs, y, **args)
                    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-300)
    # ignored elements: zero gradient; all ignored: mean 0
    grad = _grad(
        lambda v: fk.sigmoid_focal_loss(v, targets, ignore_index=-1.0, reduction="sum"), x, "float64"
    )
    assert np.all(grad[targets == -1.0] == 0.0)
    np.testing.assert_allclose(
        grad, focal_ref.sigmoid_focal_loss_grad(x, targets, ignore_index=-1.0), rtol=1e-10, atol=1e-300
    )
    everything = np.full((2, 3), -1.0)
    assert float(_np(fk.sigmoid_focal_loss(x[:2], everything, ignore_index=-1, reduction="mean"))) == 0.0
    with pytest.raises(ValueError, match="ignore_index"):
        fk.sigmoid_focal_loss(x, targets, ignore_index=0.5)
    with pytest.raises(ValueError, match="weight"):
        fk.sigmoid_focal_loss(x, targets, weight=np.ones(5))
    with pytest.raises(ValueError, match="pos_weight"):
        fk.sigmoid_focal_loss(x, np.clip(targets, 0, 1), pos_weight=-np.ones(3), validate=True)


# ----------------------------------------------------------------------------------------------
# faults found by tests/test_search_keras.py (each test failed before its fix)

_MAX = {"float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fl_star_at_the_dtype_max_is_finite(dtype):
    """gamma * x overflowed to -inf and softplus(inf) = inf; FL* = -alpha_t (y' x + beta/gamma) is finite."""
    big = _MAX[dtype]
    x, y = np.array([big, -big, big]), np.array([0.0, 1.0, 1.0])
    out = _np(fk.sigmoid_focal_loss_star(ops.convert_to_tensor(x, dtype), ops.convert_to_tensor(y, dtype)))
    ref = focal_ref.sigmoid_focal_loss_star(x, y)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    grad = _grad(lambda v: fk.sigmoid_focal_loss_star(v, ops.convert_to_tensor(y, dtype)), x, dtype)
    np.testing.assert_allclose(grad, focal_ref.sigmoid_focal_loss_star_grad(x, y), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_sigmoid_gradient_at_the_dtype_max_is_not_nan(dtype):
    """The backward pass formed gamma * alpha_t * m^gamma * CE (CE ~ x = the dtype's max: inf) before the
    derivative of log m (0): inf * 0 = NaN. The reference gradient is 1 (alpha=None, y=0)."""
    big = _MAX["float32" if dtype == "bfloat16" else dtype]
    x = np.array([big, -big, big / 2])
    y = np.array([0.0, 1.0, 0.0])
    y_t = ops.convert_to_tensor(y, dtype)
    if dtype == "bfloat16":
        x = np.array([3.3895313892515355e38, -3.3895313892515355e38, 1.6947656946257677e38])
        grad = _np(_grad_any(lambda v: fk.sigmoid_focal_loss(v, y_t, alpha=None, gamma=1.5), x, dtype))
    else:
        grad = _grad(lambda v: fk.sigmoid_focal_loss(v, y_t, alpha=None, gamma=1.5), x, dtype)
    np.testing.assert_allclose(
        grad, focal_ref.sigmoid_focal_loss_grad(x, y, alpha=None, gamma=1.5), rtol=1e-2
    )


def _grad_any(fn, values, dtype):
    """The gradient for any Keras dtype (bfloat16 included), through keras tensors."""
    x = ops.convert_to_tensor(np.asarray(values), dtype=dtype)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return tape.gradient(total, x)
    if BACKEND == "torch":
        x = x.detach().requires_grad_(True)
        fn(x).sum().backward()
        return x.grad
    import jax
    import jax.numpy as jnp

    return jax.grad(lambda v: jnp.sum(fn(v)))(x)


@pytest.mark.parametrize("fn", [fk.softmax_focal_loss, fk.categorical_focal_loss])
def test_softmax_of_an_empty_batch_is_empty(fn):
    """Logits (2, 0) with axis=0: no samples. ops.max refused the empty tensor (TF, torch backends)."""
    values = np.full((2, 0), 0.5)
    targets = np.zeros((0,), dtype="int32")
    assert tuple(fn(values, targets, axis=0).shape) == (0,)
    assert float(_np(fn(values, targets, axis=0, reduction="mean"))) == 0.0
    assert float(_np(fn(values, targets, axis=0, reduction="sum"))) == 0.0


@pytest.mark.parametrize(("dtype", "logit"), [("float32", -58.0), ("float64", -472.0)])
def test_probability_gradient_keeps_the_focal_term_for_non_integer_gamma(dtype, logit):
    """gamma = 0.5, y = 0: autodiff through log p formed 0.5 p^0.5 CE (below the smallest normal) before
    dividing by p; TF returned 2/3 of the true gradient, torch 1e-11 (float64) / 3e-4 (float32) off."""
    p = focal_ref.sigmoid_parts(np.array([logit]), 0.0)[0]
    p = ops.convert_to_numpy(ops.cast(ops.convert_to_tensor(p, dtype), "float64"))
    y = np.zeros(1)
    grad = _grad(lambda v: fk.binary_focal_loss(v, ops.convert_to_tensor(y, dtype), gamma=0.5), p, dtype)
    ref = focal_ref.binary_focal_loss_grad(p, y, gamma=0.5)
    np.testing.assert_allclose(grad, ref, rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_weight_on_an_infinite_loss_gives_zero(dtype):
    """binary_focal_loss of p = 1 on a negative is inf; weight 0 made it inf * 0 = NaN (reference: 0)."""
    p, y, w = np.array([1.0, 0.5]), np.array([0.0, 0.0]), np.array([0.0, 1.0])
    out = _np(
        fk.binary_focal_loss(ops.convert_to_tensor(p, dtype), ops.convert_to_tensor(y, dtype), weight=w)
    )
    np.testing.assert_allclose(out, focal_ref.binary_focal_loss(p, y, weight=w), rtol=1e-6)


def test_probability_gradient_at_a_subnormal_probability():
    """float32 p = sigma(-88) = 6.1e-39 (subnormal), y = 0, gamma = 0.5: the focal term is kept where the CPU
    kernels read p (torch: the reference's value); TensorFlow and XLA read a subnormal input as 0 (flush to
    zero), where the reference's gradient is 0 -- the decision in tests/test_search_keras.py::check_daz."""
    p = np.array([float(np.float32(focal_ref.sigmoid_parts(np.array([-88.0]), 0.0)[0][0]))])
    y = np.zeros(1)
    grad = _grad(
        lambda v: fk.binary_focal_loss(v, ops.convert_to_tensor(y, "float32"), gamma=0.5), p, "float32"
    )
    if BACKEND == "torch":
        np.testing.assert_allclose(grad, focal_ref.binary_focal_loss_grad(p, y, gamma=0.5), rtol=1e-5)
    else:
        assert grad[0] == 0.0 or np.isclose(grad[0], focal_ref.binary_focal_loss_grad(p, y, gamma=0.5)[0])


@pytest.mark.parametrize("masked", ["weight", "ignore_index"])
def test_zero_weight_or_ignored_at_an_infinite_loss_has_zero_gradient(masked):
    """p = 1 on a negative (bfloat16 rounds sigma(7) to 1): the masked element's loss was inf in the unused
    branch of a where(), and its derivative 1/(1-p) = inf times the 0 from the mask gave a NaN gradient."""
    p, y = np.array([1.0, 0.5]), np.array([0.0, 0.0])
    if masked == "weight":
        kw, y_in = {"weight": np.array([0.0, 1.0])}, y
    else:
        kw, y_in = {"ignore_index": -1.0}, np.array([-1.0, 0.0])
    y_t = ops.convert_to_tensor(y_in, "float64")
    grad = _grad(lambda v: fk.binary_focal_loss(v, y_t, gamma=0.0, alpha=None, **kw), p, "float64")
    np.testing.assert_allclose(grad, focal_ref.binary_focal_loss_grad(p, y_in, gamma=0.0, alpha=None, **kw))
