# ruff: noqa: B023  (the lambdas in loops are called at once, inside the loop)
"""focal_ref.keras against the NumPy reference, on whatever Keras backend KERAS_BACKEND selects.

The README runs this module three times: with the default (TensorFlow), with KERAS_BACKEND=torch and with
KERAS_BACKEND=jax (JAX_ENABLE_X64=1: without it JAX computes float64 input in float32). Each test id of
``test_backend_is_supported`` carries the backend name, so a report shows which one ran.

Agreement is measured against the float64 reference evaluated on the inputs *after* rounding to the
dtype under test, so only the implementation's own error is measured:
|out - ref| <= rtol * |ref| + atol, with atol the dtype's smallest normal number (TensorFlow flushes
subnormals to zero on CPU; they carry no relative accuracy anyway).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from cases import ALPHAS, GAMMAS, sigmoid_cases, softmax_cases  # noqa: E402
from keras import ops  # noqa: E402

import focal_ref  # noqa: E402
import focal_ref.keras as fk  # noqa: E402

BACKEND = keras.backend.backend()

# rtol per dtype: float64/float32 a few ulp times the amplification by gamma (up to 5 here) of the
# rounding of 1 - p_t; half precision is computed in float32 and rounded once to the output dtype.
RTOL = {"float64": 1e-13, "float32": 1e-5, "float16": 2.0**-11 + 1e-5, "bfloat16": 2.0**-8 + 1e-5}
ATOL = {
    "float64": np.finfo(np.float64).tiny,
    "float32": np.finfo(np.float32).tiny,
    "float16": float(np.finfo(np.float16).tiny),
    "bfloat16": np.finfo(np.float32).tiny,
}
DTYPES = list(RTOL)
# Keras's own reduction in the Loss classes: Keras 3.15's torch backend divides in float32 even for float64
# values (ops.divide_no_nan and ops.mean promote float64 with "float32" to float32), so reduced float64
# losses there agree only to float32 precision; "none" (our code alone) is compared at 1e-13 everywhere.
REDUCED_RTOL = 1e-6 if BACKEND == "torch" else 1e-13
# Gradients: autodiff multiplies intermediates that can underflow (flushed to 0 by TensorFlow) before the
# result is formed, so components within a few orders of magnitude of the smallest normal lose accuracy.
GRAD_RTOL = {dtype: 10 * RTOL[dtype] for dtype in ("float64", "float32")}
GRAD_ATOL = {dtype: 64 * ATOL[dtype] for dtype in ("float64", "float32")}


def _tensor(values, dtype):
    return ops.convert_to_tensor(np.asarray(values), dtype=dtype)


def _numpy(tensor):
    return np.asarray(ops.convert_to_numpy(ops.cast(tensor, "float64")), dtype=np.float64)


def _rounded(values, dtype):
    """(tensor in dtype, the same values as float64 numpy) — the reference sees what the backend sees."""
    tensor = _tensor(values, dtype)
    return tensor, _numpy(tensor)


def _assert_close(out, ref, dtype, what, rtol=None, atol=None):
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    rtol = RTOL[dtype] if rtol is None else rtol
    atol = ATOL[dtype] if atol is None else atol
    assert out.shape == ref.shape, (what, out.shape, ref.shape)
    assert np.array_equal(np.isinf(out), np.isinf(ref)), what
    finite = np.isfinite(ref)
    assert np.all(np.isfinite(out[finite])), f"{what}: NaN or inf where the reference is finite"
    err = np.abs(out[finite] - ref[finite])
    bound = rtol * np.abs(ref[finite]) + atol
    worst = np.argmax(err - bound) if err.size else None
    assert np.all(err <= bound), (
        f"{what} [{dtype}, {BACKEND}]: |out - ref| = {err[worst]:.3e} > {bound[worst]:.3e} "
        f"(out {out[finite][worst]!r}, ref {ref[finite][worst]!r})"
    )


def _value_and_grad(fn, values, dtype):
    """(fn(x) as float64, d sum(fn(x)) / dx as float64) with the backend's own autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(np.asarray(values), dtype=dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = fn(x)
            total = tf.reduce_sum(tf.cast(loss, tf.float32 if dtype != "float64" else tf.float64))
        grad = tape.gradient(total, x)
    elif BACKEND == "torch":
        import torch

        x = _tensor(values, dtype).detach().requires_grad_(True)
        loss = fn(x)
        loss.to(torch.float64).sum().backward()
        grad = x.grad
    else:
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(np.asarray(values), dtype=dtype)
        loss = fn(x)
        grad = jax.grad(lambda v: jnp.sum(fn(v).astype(jnp.float32)))(x)
    return _numpy(loss), _numpy(grad)


def _sigmoid_grad_terms(x, y, alpha, gamma):
    """The size of dFL/dx's parts before they cancel (soft labels: dFL/dx can be 0, as at x = 0, y = .5)."""
    with np.errstate(all="ignore"):
        p = 1.0 / (1.0 + np.exp(-x))
        m = y * (1.0 - p) + (1.0 - y) * p
        ce = y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)
        alpha_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
        # each part before the cancellation: dCE/dx = (1-y) p - y q, d m/dx = (1-y) p q - y p q
        terms = np.abs(alpha_t) * m**gamma * (m + gamma * p * (1.0 - p) / m * ce)
    return np.nan_to_num(terms, nan=0.0, posinf=0.0)


@pytest.mark.parametrize("backend", [BACKEND])
def test_backend_is_supported(backend):
    """Records which backend ran (the id is test_backend_is_supported[<backend>])."""
    print(f"focal_ref.keras tests ran on the Keras {backend} backend (keras {keras.__version__})")
    assert backend in {"tensorflow", "torch", "jax"}
    if backend == "jax":  # the float64 tests below would silently run in float32
        import jax

        assert jax.config.jax_enable_x64, "run the JAX backend with JAX_ENABLE_X64=1"
    assert ops.convert_to_numpy(fk.sigmoid_focal_loss([0.0], [1.0], alpha=None, gamma=0.0)) == pytest.approx(
        [np.log(2.0)], rel=1e-6
    )


# ----------------------------------------------------------------------------------------------
# values against the reference, per dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_losses_match_reference(dtype):
    logits, targets = sigmoid_cases()
    x, xr = _rounded(logits, dtype)
    y, yr = _rounded(targets, dtype)
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            out = fk.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
            assert keras.backend.standardize_dtype(out.dtype) == dtype
            ref = focal_ref.sigmoid_focal_loss(xr, yr, alpha=alpha, gamma=gamma)
            _assert_close(_numpy(out), ref, dtype, f"sigmoid_focal_loss gamma={gamma} alpha={alpha}")
    hard = (targets == 0) | (targets == 1)
    for gamma in (0.5, 2.0, 5.0):
        out = fk.sigmoid_focal_loss_star(x[hard], y[hard], gamma=gamma, beta=1.0, alpha=0.25)
        ref = focal_ref.sigmoid_focal_loss_star(xr[hard], yr[hard], gamma=gamma, beta=1.0, alpha=0.25)
        _assert_close(_numpy(out), ref, dtype, f"sigmoid_focal_loss_star gamma={gamma}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_focal_loss_matches_reference(dtype):
    rng = np.random.default_rng(1)
    probs = np.concatenate([1.0 / (1.0 + np.exp(-rng.normal(0.0, 3.0, 200))), [0.0, 1.0, 0.0, 1.0, 0.5]])
    targets = np.concatenate([rng.uniform(size=200).round(1), [0.0, 1.0, 1.0, 0.0, 0.3]])
    p, pr = _rounded(probs, dtype)
    y, yr = _rounded(targets, dtype)
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            out = fk.binary_focal_loss(p, y, alpha=alpha, gamma=gamma)
            ref = focal_ref.binary_focal_loss(pr, yr, alpha=alpha, gamma=gamma)
            _assert_close(_numpy(out), ref, dtype, f"binary_focal_loss gamma={gamma} alpha={alpha}")
    assert np.isinf(_numpy(fk.binary_focal_loss(p, y, alpha=None))[-3:-1]).all()  # -log 0 on the true class


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_losses_match_reference(dtype):
    logits, index, soft = softmax_cases()
    x, xr = _rounded(logits, dtype)
    s, sr = _rounded(soft, dtype)
    idx = ops.convert_to_tensor(index, dtype="int32")
    for gamma in GAMMAS:
        for alpha in (None, 0.25, [0.1, 0.2, 0.3, 0.9, 1.0]):
            for targets, targets_ref in ((idx, index), (s, sr)):
                out = fk.softmax_focal_loss(x, targets, alpha=alpha, gamma=gamma)
                ref = focal_ref.softmax_focal_loss(xr, targets_ref, alpha=alpha, gamma=gamma)
                _assert_close(_numpy(out), ref, dtype, f"softmax_focal_loss gamma={gamma} alpha={alpha}")
    # probability input: p = softmax(x) of the random rows (the saturated ones hold exact 0s and 1s)
    probs = np.exp(logits[:100] - logits[:100].max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    p, pr = _rounded(probs, dtype)
    for gamma in GAMMAS:
        out = fk.categorical_focal_loss(p, idx[:100], alpha=[0.1, 0.2, 0.3, 0.9, 1.0], gamma=gamma)
        ref = focal_ref.categorical_focal_loss(pr, index[:100], alpha=[0.1, 0.2, 0.3, 0.9, 1.0], gamma=gamma)
        _assert_close(_numpy(out), ref, dtype, f"categorical_focal_loss gamma={gamma}")
        out = fk.categorical_focal_loss(p, s[:100], gamma=gamma)
        _assert_close(
            _numpy(out),
            focal_ref.categorical_focal_loss(pr, sr[:100], gamma=gamma),
            dtype,
            f"categorical_focal_loss gamma={gamma} soft",
        )


def test_softmax_axis_ignore_index_and_reductions():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 3.0, (4, 3, 5))  # class axis 1, as in a segmentation map
    labels = rng.integers(0, 3, (4, 5))
    labels[0, :2] = -100
    labels[3, :] = -100
    for reduction in ("none", "mean", "sum"):
        kw = dict(alpha=[0.2, 0.5, 1.0], gamma=1.5, axis=1, ignore_index=-100, reduction=reduction)
        out = fk.softmax_focal_loss(logits, ops.convert_to_tensor(labels, "int32"), **kw)
        _assert_close(
            _numpy(out), focal_ref.softmax_focal_loss(logits, labels, **kw), "float64", "softmax axis=1"
        )
        soft = rng.dirichlet(np.ones(3), (4, 5)).transpose(0, 2, 1)
        kw = dict(gamma=0.5, axis=-2, reduction=reduction)
        _assert_close(
            _numpy(fk.categorical_focal_loss(soft, soft, **kw)),
            focal_ref.categorical_focal_loss(soft, soft, **kw),
            "float64",
            "categorical axis=-2",
        )
    everything_ignored = np.full((4, 5), -100)
    out = fk.softmax_focal_loss(logits, everything_ignored, axis=1, ignore_index=-100, reduction="mean")
    assert float(_numpy(out)) == 0.0


def test_sigmoid_reductions_and_plain_inputs():
    logits, targets = sigmoid_cases()
    for fn in ("sigmoid_focal_loss", "sigmoid_focal_loss_star"):
        hard = (targets == 0) | (targets == 1) if fn.endswith("star") else slice(None)
        for reduction in ("mean", "sum"):
            out = getattr(fk, fn)(logits[hard], targets[hard], reduction=reduction)
            ref = getattr(focal_ref, fn)(logits[hard], targets[hard], reduction=reduction)
            assert np.shape(out) == ()
            _assert_close(_numpy(out), ref, "float64", f"{fn} {reduction}")
    # Python lists and 0-d inputs; integer logits are cast to floatx
    assert float(_numpy(fk.sigmoid_focal_loss(2.0, 1.0))) == pytest.approx(
        float(focal_ref.sigmoid_focal_loss(2.0, 1.0)), rel=1e-6
    )
    out = fk.sigmoid_focal_loss([[1, -2]], [[1, 0]], alpha=None, gamma=0.0)
    assert keras.backend.standardize_dtype(out.dtype) == keras.config.floatx()
    np.testing.assert_allclose(_numpy(out), [[np.log1p(np.exp(-1.0)), np.log1p(np.exp(-2.0))]], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# gradients through the backend's autodiff


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_gradients_match_reference(dtype):
    logits, targets = sigmoid_cases()
    x, xr = _rounded(logits, dtype)
    _, yr = _rounded(targets, dtype)
    hard = (targets == 0) | (targets == 1)
    for gamma in GAMMAS:
        for alpha in (None, 0.25):
            _, grad = _value_and_grad(
                lambda v: fk.sigmoid_focal_loss(v, yr.astype(dtype), alpha=alpha, gamma=gamma),
                xr,
                dtype,
            )
            ref = focal_ref.sigmoid_focal_loss_grad(xr, yr, alpha=alpha, gamma=gamma)
            # where the two terms of the gradient cancel (soft labels), the error scales with the terms
            atol = GRAD_ATOL[dtype] + GRAD_RTOL[dtype] * _sigmoid_grad_terms(xr, yr, alpha, gamma)
            _assert_close(
                grad,
                ref,
                dtype,
                f"sigmoid_focal_loss_grad gamma={gamma} alpha={alpha}",
                rtol=GRAD_RTOL[dtype],
                atol=atol,
            )
        if gamma > 0:
            _, grad = _value_and_grad(
                lambda v: fk.sigmoid_focal_loss_star(v, yr[hard].astype(dtype), gamma=gamma),
                xr[hard],
                dtype,
            )
            ref = focal_ref.sigmoid_focal_loss_star_grad(xr[hard], yr[hard], gamma=gamma)
            _assert_close(
                grad,
                ref,
                dtype,
                f"sigmoid_focal_loss_star_grad gamma={gamma}",
                rtol=GRAD_RTOL[dtype],
                atol=GRAD_ATOL[dtype],
            )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_gradients_match_reference(dtype):
    logits, index, soft = softmax_cases()
    _, xr = _rounded(logits, dtype)
    _, sr = _rounded(soft, dtype)
    for gamma in GAMMAS:
        for targets in (index, sr):
            typed = targets if targets is index else targets.astype(dtype)
            _, grad = _value_and_grad(
                lambda v: fk.softmax_focal_loss(v, typed, alpha=[0.1, 0.2, 0.3, 0.9, 1.0], gamma=gamma),
                xr,
                dtype,
            )
            ref = focal_ref.softmax_focal_loss_grad(xr, targets, alpha=[0.1, 0.2, 0.3, 0.9, 1.0], gamma=gamma)
            # relative to each row's largest component (a sample's gradient is one vector)
            scale = np.max(np.abs(ref), axis=-1, keepdims=True)
            err = np.abs(grad - ref)
            assert np.all(np.isfinite(grad))
            assert np.all(err <= GRAD_RTOL[dtype] * scale + GRAD_ATOL[dtype]), (gamma, np.max(err / scale))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_finite_for_small_gamma_at_saturation(dtype):
    """gamma < 1 with p_t -> 1: autodiff of (1-p_t)**gamma would give inf * 0 = NaN; it must not."""
    big = [17.0, 40.0, 100.0, 1e4] + ([745.0] if dtype in ("float64", "float32") else [])
    logits = np.array([b * s for b in big for s in (1.0, -1.0)])
    targets = (logits > 0).astype(np.float64)  # p_t -> 1: the easiest examples
    for gamma in (0.01, 0.1, 0.5, 0.99):
        for fn, y in ((fk.sigmoid_focal_loss, targets), (fk.sigmoid_focal_loss, 1.0 - targets)):
            loss, grad = _value_and_grad(lambda v: fn(v, y.astype(np.float32), gamma=gamma), logits, dtype)
            assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (dtype, gamma, grad)
            if dtype in ("float64", "float32"):
                ref = focal_ref.sigmoid_focal_loss_grad(_numpy(_tensor(logits, dtype)), y, gamma=gamma)
                _assert_close(
                    grad,
                    ref,
                    dtype,
                    f"sigmoid_focal_loss_grad saturated gamma={gamma}",
                    rtol=GRAD_RTOL[dtype],
                    atol=GRAD_ATOL[dtype],
                )
        rows = np.zeros((len(big), 3))
        rows[:, 0] = big
        _, grad = _value_and_grad(
            lambda v: fk.softmax_focal_loss(v, np.zeros(len(big), "int32"), gamma=gamma),
            rows,
            dtype,
        )
        assert np.all(np.isfinite(grad)), (dtype, gamma, grad)
        # probability inputs at p_t = 1 exactly
        _, grad = _value_and_grad(
            lambda v: fk.binary_focal_loss(v, np.array([1.0, 0.0], "float32"), gamma=gamma),
            np.array([1.0, 0.0]),
            dtype,
        )
        assert np.all(np.isfinite(grad)), (dtype, gamma, grad)
        _, grad = _value_and_grad(
            lambda v: fk.categorical_focal_loss(v, np.array([0], "int32"), gamma=gamma),
            np.array([[1.0, 0.0, 0.0]]),
            dtype,
        )
        assert np.all(np.isfinite(grad)), (dtype, gamma, grad)


def test_half_precision_is_computed_in_float32():
    """A float16 result is the float32 result rounded once, not a float16 computation."""
    x = np.linspace(-12.0, 12.0, 97)
    y = (np.arange(97) % 2).astype(np.float64)
    out16 = _numpy(fk.sigmoid_focal_loss(_tensor(x, "float16"), _tensor(y, "float16"), gamma=2.0))
    out32 = fk.sigmoid_focal_loss(
        _tensor(_numpy(_tensor(x, "float16")), "float32"), _tensor(y, "float32"), gamma=2.0
    )
    np.testing.assert_array_equal(out16, _numpy(ops.cast(out32, "float16")))


# ----------------------------------------------------------------------------------------------
# Keras Loss classes


def test_loss_classes_match_reference_reductions():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 3.0, (6, 4))
    targets = rng.integers(0, 2, (6, 4)).astype(np.float64)
    weights = rng.uniform(size=6)
    ref = focal_ref.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    loss = fk.BinaryFocalLoss(alpha=0.25, gamma=2.0, from_logits=True, dtype="float64")
    assert float(_numpy(loss(targets, logits))) == pytest.approx(ref.mean(), rel=REDUCED_RTOL)
    loss = fk.BinaryFocalLoss(from_logits=True, reduction="sum", dtype="float64")
    assert float(_numpy(loss(targets, logits))) == pytest.approx(ref.sum() / 4, rel=REDUCED_RTOL)
    loss = fk.BinaryFocalLoss(from_logits=True, reduction="none", dtype="float64")
    np.testing.assert_allclose(_numpy(loss(targets, logits)), ref.mean(-1), rtol=1e-13)
    loss = fk.BinaryFocalLoss(dtype="float64")  # probabilities; (n, 1) predictions vs (n,) labels
    probs = 1.0 / (1.0 + np.exp(-logits[:, 0]))
    ref_p = focal_ref.binary_focal_loss(probs, targets[:, 0])
    assert float(_numpy(loss(targets[:, 0], probs[:, None]))) == pytest.approx(ref_p.mean(), rel=REDUCED_RTOL)
    assert float(_numpy(loss(targets[:, :1], probs[:, None], sample_weight=weights))) == pytest.approx(
        (ref_p * weights).mean(), rel=REDUCED_RTOL
    )

    logits = rng.normal(0.0, 3.0, (6, 3))
    labels = np.array([0, 2, 1, -1, 2, -1])
    onehot = np.eye(3)[np.maximum(labels, 0)]
    kw = dict(alpha=[0.25, 0.5, 1.0], gamma=2.0)
    loss = fk.CategoricalFocalLoss(from_logits=True, dtype="float64", **kw)
    ref = focal_ref.softmax_focal_loss(logits, onehot, **kw)
    assert float(_numpy(loss(onehot, logits))) == pytest.approx(ref.mean(), rel=REDUCED_RTOL)
    loss = fk.CategoricalFocalLoss(from_logits=True, dtype="float64", reduction="sum", **kw)
    assert float(_numpy(loss(onehot, logits))) == pytest.approx(ref.sum(), rel=REDUCED_RTOL)
    loss = fk.SparseCategoricalFocalLoss(from_logits=True, dtype="float64", **kw)
    assert float(_numpy(loss(np.maximum(labels, 0)[:, None], logits))) == pytest.approx(
        ref.mean(), rel=REDUCED_RTOL
    )
    # ignore_index: ignored samples give 0 and leave the denominator, as in the reference's "mean"
    ref_ign = focal_ref.softmax_focal_loss(logits, labels, ignore_index=-1, **kw)
    for reduction, expected in (
        ("sum_over_batch_size", ref_ign.sum() / 4),
        ("mean", ref_ign.sum() / 4),
        ("sum", ref_ign.sum()),
        ("none", ref_ign),
    ):
        loss = fk.SparseCategoricalFocalLoss(
            from_logits=True, ignore_index=-1, reduction=reduction, dtype="float64", **kw
        )
        rtol = 1e-13 if reduction == "none" else REDUCED_RTOL
        np.testing.assert_allclose(_numpy(loss(labels, logits)), expected, rtol=rtol)
    loss = fk.SparseCategoricalFocalLoss(from_logits=True, ignore_index=-1, dtype="float64", **kw)
    assert float(_numpy(loss(labels, logits, sample_weight=weights))) == pytest.approx(
        (ref_ign * weights).sum() / 4, rel=REDUCED_RTOL
    )
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    loss = fk.SparseCategoricalFocalLoss(ignore_index=-1, dtype="float64", **kw)
    ref_p = focal_ref.categorical_focal_loss(probs, labels, ignore_index=-1, **kw)
    assert float(_numpy(loss(labels, probs))) == pytest.approx(ref_p.sum() / 4, rel=REDUCED_RTOL)


def test_loss_classes_config_round_trip():
    losses = [
        fk.BinaryFocalLoss(alpha=None, gamma=0.5, from_logits=True, reduction="sum", name="bfl"),
        fk.CategoricalFocalLoss(alpha=[0.25, 0.5, 1.0], gamma=1.0, from_logits=True, axis=-1),
        fk.SparseCategoricalFocalLoss(alpha=0.5, gamma=3.0, ignore_index=-1, reduction="none"),
    ]
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(5, 3)).astype(np.float32)
    y_true = [
        (logits > 0).astype(np.float32),
        np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]],
        np.array([0, 1, 2, -1, 1]),
    ]
    for loss, target in zip(losses, y_true):  # noqa: B905
        config = loss.get_config()
        clone = type(loss).from_config(config)
        assert clone.get_config() == config
        serialized = keras.saving.serialize_keras_object(loss)
        assert serialized["registered_name"] == f"focal_ref>{type(loss).__name__}"
        revived = keras.saving.deserialize_keras_object(serialized)
        assert type(revived) is type(loss) and revived.get_config() == config
        expected = _numpy(loss(target, logits))
        np.testing.assert_array_equal(_numpy(clone(target, logits)), expected)
        np.testing.assert_array_equal(_numpy(revived(target, logits)), expected)
    assert losses[1].get_config()["alpha"] == [0.25, 0.5, 1.0]
    assert losses[2].get_config()["ignore_index"] == -1


def test_tiny_model_trains_with_fit(tmp_path):
    """A two-headed model, the three loss classes, a few epochs of fit; then save and reload as .keras."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(5)
    features = rng.normal(size=(128, 4)).astype(np.float32)
    classes = (features[:, 0] > 0).astype(np.int32) + (features[:, 1] > 0.5).astype(np.int32)
    binary = (features[:, 2] + features[:, 3] > 0).astype(np.float32)[:, None]
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = {
        "binary": keras.layers.Dense(1, name="binary")(hidden),
        "sparse": keras.layers.Dense(3, name="sparse")(hidden),
        "onehot": keras.layers.Dense(3, activation="softmax", name="onehot")(hidden),
    }
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        jit_compile=False,  # XLA compilation would dominate the test's time
        loss={
            "binary": fk.BinaryFocalLoss(from_logits=True),
            "sparse": fk.SparseCategoricalFocalLoss(alpha=[0.5, 0.25, 0.5], gamma=0.5, from_logits=True),
            "onehot": fk.CategoricalFocalLoss(gamma=2.0),  # probabilities
        },
    )
    targets = {"binary": binary, "sparse": classes, "onehot": np.eye(3, dtype=np.float32)[classes]}
    history = model.fit(features, targets, epochs=5, batch_size=32, verbose=0).history
    for key in ("loss", "binary_loss", "sparse_loss", "onehot_loss"):
        assert np.all(np.isfinite(history[key])), key
        assert history[key][-1] < 0.7 * history[key][0], (key, history[key])
    path = tmp_path / "tiny.keras"
    model.save(path)
    revived = keras.saving.load_model(path)  # the registered "focal_ref>..." names bring the losses back
    predictions = {key: _numpy(value) for key, value in model(features[:16]).items()}
    for key, loss in model.loss.items():
        clone = revived.loss[key]
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
        target = targets[key][:16]
        assert float(_numpy(clone(target, predictions[key]))) == float(_numpy(loss(target, predictions[key])))


# ----------------------------------------------------------------------------------------------
# bad input: ValueError / TypeError naming the argument; valid edge cases pass


BAD_CALLS = [
    ("gamma", ValueError, lambda: fk.sigmoid_focal_loss([1.0], [1.0], gamma=-1.0)),
    ("gamma", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0], gamma=float("nan"))),
    ("gamma", TypeError, lambda: fk.binary_focal_loss([0.5], [1.0], gamma="2")),
    ("gamma", ValueError, lambda: fk.sigmoid_focal_loss_star([1.0], [1.0], gamma=0.0)),
    ("alpha", ValueError, lambda: fk.sigmoid_focal_loss([1.0], [1.0], alpha=1.5)),
    ("alpha", TypeError, lambda: fk.sigmoid_focal_loss([1.0], [1.0], alpha="0.25")),
    ("alpha", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0], alpha=[0.5, 0.5, 0.5])),
    ("alpha[1]", ValueError, lambda: fk.categorical_focal_loss([[0.5, 0.5]], [0], alpha=[0.5, -0.5])),
    ("reduction", ValueError, lambda: fk.sigmoid_focal_loss([1.0], [1.0], reduction="avg")),
    ("reduction", TypeError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0], reduction=None)),
    ("axis", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0], axis=2)),
    ("axis", TypeError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0], axis=1.0)),
    ("targets", ValueError, lambda: fk.sigmoid_focal_loss([1.0, 2.0], [1.0])),
    ("targets", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [[0, 1, 0]])),
    ("targets", TypeError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0.0])),
    ("ignore_index", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [[1.0, 0.0]], ignore_index=-1)),
    ("ignore_index", TypeError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [0], ignore_index=0.5)),
    ("beta", ValueError, lambda: fk.sigmoid_focal_loss_star([1.0], [1.0], beta=float("inf"))),
    ("logits", TypeError, lambda: fk.sigmoid_focal_loss(["a"], [1.0])),
    # value checks: opt-in with validate=True (they read tensor values)
    ("targets", ValueError, lambda: fk.sigmoid_focal_loss([1.0], [1.5], validate=True)),
    ("targets", ValueError, lambda: fk.sigmoid_focal_loss([1.0], [float("nan")], validate=True)),
    ("logits", ValueError, lambda: fk.sigmoid_focal_loss([float("inf")], [1.0], validate=True)),
    ("logits", ValueError, lambda: fk.softmax_focal_loss([[float("nan"), 0.0]], [0], validate=True)),
    ("targets", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [2], validate=True)),
    (
        "targets",
        ValueError,
        lambda: fk.softmax_focal_loss([[1.0, 0.0]], [-1], ignore_index=-100, validate=True),
    ),
    ("targets", ValueError, lambda: fk.softmax_focal_loss([[1.0, 0.0]], [[1.5, -0.5]], validate=True)),
    ("probs", ValueError, lambda: fk.binary_focal_loss([1.5], [1.0], validate=True)),
    ("probs", ValueError, lambda: fk.categorical_focal_loss([[-0.1, 1.1]], [0], validate=True)),
    ("targets", ValueError, lambda: fk.sigmoid_focal_loss_star([1.0], [0.5], validate=True)),
    # the Loss classes validate their hyperparameters at construction
    ("gamma", ValueError, lambda: fk.BinaryFocalLoss(gamma=-0.5)),
    ("alpha", ValueError, lambda: fk.BinaryFocalLoss(alpha=2.0)),
    ("alpha[1]", ValueError, lambda: fk.CategoricalFocalLoss(alpha=[0.5, 1.5])),
    ("alpha", TypeError, lambda: fk.SparseCategoricalFocalLoss(alpha="balanced")),
    ("axis", TypeError, lambda: fk.CategoricalFocalLoss(axis="last")),
    ("ignore_index", TypeError, lambda: fk.SparseCategoricalFocalLoss(ignore_index="void")),
    ("reduction", ValueError, lambda: fk.BinaryFocalLoss(reduction="average")),
]


@pytest.mark.parametrize("name, error, call", BAD_CALLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_raises_naming_the_argument(name, error, call):
    with pytest.raises(error, match=name.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_valid_edge_cases_pass():
    assert float(_numpy(fk.sigmoid_focal_loss([3.0], [1.0], alpha=None, gamma=0.0))[0]) == pytest.approx(
        np.log1p(np.exp(-3.0)), rel=1e-6
    )
    for alpha in (0.0, 1.0, None):
        fk.sigmoid_focal_loss([3.0, -3.0], [1.0, 0.3], alpha=alpha, validate=True)
        fk.softmax_focal_loss([[3.0, -3.0]], [1], alpha=alpha, validate=True)
    fk.softmax_focal_loss([[3.0, -3.0], [0.0, 0.0]], [1, -100], ignore_index=-100, validate=True)
    fk.softmax_focal_loss([[3.0, -3.0]], [[0.2, 0.8]], validate=True)
    fk.categorical_focal_loss([[0.0, 1.0]], [1], validate=True)
    fk.sigmoid_focal_loss_star([[2.0]], [[0]], validate=True)


@pytest.mark.parametrize("backend", [BACKEND])
def test_conformance_checker_on_this_backend(backend):
    """focal_ref.testing's Keras framework on this backend: ours passes, a 1 - sigmoid(x) form fails."""
    from focal_ref.testing import check_sigmoid_focal_loss, check_softmax_focal_loss

    assert check_sigmoid_focal_loss(fk.sigmoid_focal_loss, framework="keras").passed
    assert check_softmax_focal_loss(fk.softmax_focal_loss, framework="keras").passed

    def one_minus_sigmoid(x, y, alpha=0.25, gamma=2.0):
        p = ops.sigmoid(x)
        ce = -(y * ops.log(p) + (1 - y) * ops.log(1 - p))
        m = y * (1 - p) + (1 - y) * p
        return (alpha * y + (1 - alpha) * (1 - y)) * m**gamma * ce

    report = check_sigmoid_focal_loss(one_minus_sigmoid, framework="keras")
    assert not report.passed and "saturated logits" in report.failed_regions
    assert report.row("moderate logits").status == "pass"


# ----------------------------------------------------------------------------------------------
# BinaryFocalLoss's pos_weight and ignore_index (issue 13), and sample_weight in the role of weight


def _binary_inputs(seed=31, shape=(6, 4)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 4.0, shape)
    labels = rng.integers(0, 2, shape).astype(np.float64)
    return logits, labels, 1.0 / (1.0 + np.exp(-logits))


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize(
    "pos_weight", [2.5, [0.0, 1.0, 3.0, 1e3], [[0.5], [2.0], [1.0], [0.0], [4.0], [1.0]]]
)
def test_binary_focal_loss_class_pos_weight_equals_the_function(from_logits, pos_weight):
    """Each sample's value is the mean over the last axis of the function with the same pos_weight; the
    default reduction is the function's mean; the gradient is the function's."""
    logits, labels, probs = _binary_inputs()
    inputs = logits if from_logits else probs
    kw = dict(alpha=0.3, gamma=1.5)
    fn = fk.sigmoid_focal_loss if from_logits else fk.binary_focal_loss
    ref_fn = focal_ref.sigmoid_focal_loss if from_logits else focal_ref.binary_focal_loss
    ref = ref_fn(inputs, labels, pos_weight=np.asarray(pos_weight), **kw)
    per_sample = fk.BinaryFocalLoss(
        from_logits=from_logits, pos_weight=pos_weight, reduction="none", dtype="float64", **kw
    )
    np.testing.assert_allclose(_numpy(per_sample(labels, inputs)), ref.mean(-1), rtol=1e-13)
    mean = fk.BinaryFocalLoss(from_logits=from_logits, pos_weight=pos_weight, dtype="float64", **kw)
    assert float(_numpy(mean(labels, inputs))) == pytest.approx(ref.mean(), rel=REDUCED_RTOL)
    got, got_grad = _value_and_grad(lambda x: per_sample(_tensor(labels, "float64"), x), inputs, "float64")
    want, want_grad = _value_and_grad(
        # sum / 4, not ops.mean: Keras's torch backend takes ops.mean of float64 in float32
        lambda x: (
            ops.sum(fn(x, _tensor(labels, "float64"), pos_weight=np.asarray(pos_weight), **kw), axis=-1) / 4.0
        ),
        inputs,
        "float64",
    )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-13, atol=1e-300)
    # pos_weight = 1 is no pos_weight; pos_weight = 0 leaves only the negatives' terms
    ones = fk.BinaryFocalLoss(
        from_logits=from_logits, pos_weight=1.0, reduction="none", dtype="float64", **kw
    )
    plain = fk.BinaryFocalLoss(from_logits=from_logits, reduction="none", dtype="float64", **kw)
    np.testing.assert_array_equal(_numpy(ones(labels, inputs)), _numpy(plain(labels, inputs)))
    zero = fk.BinaryFocalLoss(
        from_logits=from_logits, pos_weight=0.0, reduction="none", dtype="float64", **kw
    )
    np.testing.assert_allclose(
        _numpy(zero(labels, inputs)), ref_fn(inputs, labels, **kw).__mul__(1.0 - labels).mean(-1), rtol=1e-13
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_focal_loss_class_ignore_index(from_logits):
    logits, labels, probs = _binary_inputs(shape=(8, 3))
    inputs = logits if from_logits else probs
    ref_fn = focal_ref.sigmoid_focal_loss if from_logits else focal_ref.binary_focal_loss
    kw = dict(alpha=0.25, gamma=0.5, pos_weight=[1.0, 3.0, 0.5])

    def loss(reduction="sum_over_batch_size", **extra):
        return fk.BinaryFocalLoss(
            from_logits=from_logits, ignore_index=-1, reduction=reduction, dtype="float64", **kw, **extra
        )

    # whole samples ignored (RetinaNet's anchors in the IoU band): exactly the reference's mean and sum
    whole = labels.copy()
    whole[[1, 4, 5]] = -1.0
    ref = ref_fn(inputs, whole, ignore_index=-1, **kw)
    assert float(_numpy(loss()(whole, inputs))) == pytest.approx(
        float(ref_fn(inputs, whole, ignore_index=-1, reduction="mean", **kw)), rel=REDUCED_RTOL
    )
    assert float(_numpy(loss("mean")(whole, inputs))) == pytest.approx(ref.sum() / 15, rel=REDUCED_RTOL)
    assert float(_numpy(loss("sum")(whole, inputs))) == pytest.approx(ref.sum() / 3, rel=REDUCED_RTOL)
    none = _numpy(loss("none")(whole, inputs))
    np.testing.assert_allclose(none, ref.sum(-1) / 3, rtol=1e-13)
    assert np.all(none[[1, 4, 5]] == 0.0)
    # one label per sample, (n,) against a Dense(1) output (n, 1): the reference's mean
    single = whole[:, 0]
    want = ref_fn(inputs[:, 0], single, ignore_index=-1, reduction="mean", alpha=0.25, gamma=0.5)
    got = fk.BinaryFocalLoss(from_logits=from_logits, alpha=0.25, gamma=0.5, ignore_index=-1, dtype="float64")
    assert float(_numpy(got(single, inputs[:, :1]))) == pytest.approx(float(want), rel=REDUCED_RTOL)
    # labels ignored within samples: each sample is the mean over its kept labels
    partial = whole.copy()
    partial[0, 1] = partial[2, 0] = partial[2, 2] = -1.0
    ref = ref_fn(inputs, partial, ignore_index=-1, **kw)
    kept = (partial != -1).sum(-1)
    row_means = ref.sum(-1) / np.maximum(kept, 1)
    np.testing.assert_allclose(_numpy(loss("none")(partial, inputs)), row_means, rtol=1e-13)
    assert float(_numpy(loss()(partial, inputs))) == pytest.approx(
        row_means[kept > 0].mean(), rel=REDUCED_RTOL
    )
    # everything ignored: 0.0, finite; and the gradient at ignored labels is 0
    assert float(_numpy(loss()(np.full_like(labels, -1.0), inputs))) == 0.0
    _, grad = _value_and_grad(lambda x: loss("sum")(_tensor(partial, "float64"), x), inputs, "float64")
    assert np.all(grad[partial == -1] == 0.0) and np.all(np.isfinite(grad))
    # label smoothing leaves the ignored labels ignored
    smooth = loss("none", label_smoothing=0.2)(partial, inputs)
    smoothed = np.where(partial == -1, -1.0, partial * 0.8 + 0.1)
    want = ref_fn(inputs, smoothed, ignore_index=-1, **kw).sum(-1) / np.maximum(kept, 1)
    np.testing.assert_allclose(_numpy(smooth), want, rtol=1e-13)


@pytest.mark.parametrize("ignore", [None, -1])
def test_binary_focal_loss_class_sample_weight_is_the_functions_weight(ignore):
    """Keras's sample_weight (per sample) plays the functions' weight for every reduction Keras offers."""
    logits, labels, _ = _binary_inputs(seed=32, shape=(7, 4))
    if ignore is not None:
        labels[[0, 3]] = -1.0  # whole samples: the Keras mean is then the reference's mean
    sample_weight = np.random.default_rng(5).uniform(0.0, 3.0, 7)
    sample_weight[2] = 0.0
    kw = dict(alpha=0.25, gamma=2.0, pos_weight=[1.0, 2.0, 0.5, 4.0], ignore_index=ignore)
    ref = focal_ref.sigmoid_focal_loss(logits, labels, weight=sample_weight[:, None], **kw)
    ref_mean = focal_ref.sigmoid_focal_loss(
        logits, labels, weight=sample_weight[:, None], reduction="mean", **kw
    )
    for reduction, want in (
        ("sum_over_batch_size", ref_mean),
        ("sum", ref.sum() / 4),
        ("none", ref.sum(-1) / 4),
    ):
        loss = fk.BinaryFocalLoss(from_logits=True, reduction=reduction, dtype="float64", **kw)
        rtol = 1e-13 if reduction == "none" else REDUCED_RTOL
        np.testing.assert_allclose(_numpy(loss(labels, logits, sample_weight=sample_weight)), want, rtol=rtol)


def test_binary_focal_loss_class_new_args_config_round_trip_and_bad_values():
    logits, labels, _ = _binary_inputs(seed=33)
    labels[0, 0] = -2.0
    loss = fk.BinaryFocalLoss(
        alpha=0.4, gamma=1.0, from_logits=True, pos_weight=[1.0, 2.0, 0.1, 5.0], ignore_index=-2
    )
    config = loss.get_config()
    assert config["pos_weight"] == [1.0, 2.0, 0.1, 5.0] and config["ignore_index"] == -2.0
    for clone in (
        fk.BinaryFocalLoss.from_config(config),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss)),
    ):
        assert isinstance(clone, fk.BinaryFocalLoss) and clone.get_config() == config
        np.testing.assert_array_equal(_numpy(clone(labels, logits)), _numpy(loss(labels, logits)))
    scalar = fk.BinaryFocalLoss(pos_weight=np.float32(2.0)).get_config()
    assert scalar["pos_weight"] == 2.0 and scalar["ignore_index"] is None
    assert fk.BinaryFocalLoss().get_config()["pos_weight"] is None
    for error, kwargs in (
        (ValueError, dict(pos_weight=-1.0)),
        (ValueError, dict(pos_weight=[1.0, float("nan")])),
        (ValueError, dict(pos_weight=np.inf)),
        (TypeError, dict(pos_weight=True)),
        (TypeError, dict(pos_weight="balanced")),
        (TypeError, dict(pos_weight=[1j])),
        (ValueError, dict(ignore_index=0.5)),
        (ValueError, dict(ignore_index=float("nan"))),
        (TypeError, dict(ignore_index="void")),
        (TypeError, dict(ignore_index=True)),
    ):
        name = next(iter(kwargs))
        with pytest.raises(error, match=name):
            fk.BinaryFocalLoss(**kwargs)
    with pytest.raises(ValueError, match="pos_weight"):
        fk.BinaryFocalLoss(pos_weight=[1.0, 2.0, 3.0])(labels, logits)  # (3,) against (6, 4)


def test_binary_focal_loss_class_with_ignore_index_in_compiled_fit_and_evaluate():
    """Inside Keras's compiled train/test steps (a tf.function graph on TensorFlow): evaluate gives the
    eager value, fit stays finite, and ignored labels get no gradient."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(6)
    features = rng.normal(size=(64, 4)).astype(np.float32)
    labels = (features[:, :3] > 0).astype(np.float32)
    labels[rng.uniform(size=labels.shape) < 0.3] = -1.0
    labels[:5] = -1.0
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    loss = fk.BinaryFocalLoss(from_logits=True, pos_weight=[1.0, 4.0, 0.5], ignore_index=-1)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=False)
    eager = float(_numpy(loss(labels, model(features))))
    evaluated = model.evaluate(features, labels, batch_size=64, verbose=0)
    assert evaluated == pytest.approx(eager, rel=1e-6)
    history = model.fit(features, labels, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # a model whose only labels are ignored does not move
    before = [_numpy(w) for w in model.trainable_weights]
    model.fit(features, np.full_like(labels, -1.0), batch_size=64, epochs=1, verbose=0)
    for old, new in zip(before, model.trainable_weights):  # noqa: B905
        np.testing.assert_array_equal(old, _numpy(new))
