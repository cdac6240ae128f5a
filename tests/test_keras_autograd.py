# ruff: noqa: B023  (the lambdas in loops are called at once, inside the loop)
"""The autograd contract of focal_ref.keras on the backend KERAS_BACKEND selects (issue 16).

Second derivatives through the backend's own autodiff (TensorFlow: nested GradientTape; torch: double
backward; JAX: ``jax.hessian`` and nested ``jax.grad``) and forward mode (``jax.jvp``, ``torch.func.jvp``,
``tf.autodiff.ForwardAccumulator``) against the reference's ``sigmoid_focal_loss_hess`` (elementwise
d^2 FL / dx^2) and ``softmax_focal_loss_hessian`` (per-sample C x C Hessian), at moderate and at saturated
logits (x = +-50 in float32, |x| up to 700 in float64), gamma in {0, .5, 1, 2}. Before the fix, JAX gave NaN
second derivatives at saturated logits: the power was exp(gamma log m), and d^2 log m divides by m^2.
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
GAMMAS = (0.0, 0.5, 1.0, 2.0)
# rtol on second derivatives: autodiff's rounding, amplified by gamma; atol: the dtype's smallest normal
# times a margin (TensorFlow flushes subnormal intermediates to zero)
RTOL = {"float64": 1e-10, "float32": 2e-4}
ATOL = {"float64": 1e-300, "float32": 1e-30}


def _np(tensor):
    return np.asarray(ops.convert_to_numpy(ops.cast(tensor, "float64")), dtype=np.float64)


def _grad_and_second(fn, values, dtype, directions):
    """(d sum(fn) / dx, [d/dx (grad . v_k)] for each direction v_k), nested reverse mode of the backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(values, dtype=dtype)
        seconds = []
        for v in directions:
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    total = tf.reduce_sum(fn(x))
                grad = inner.gradient(total, x)
                projected = tf.reduce_sum(grad * tf.constant(v, dtype=dtype))
            seconds.append(outer.gradient(projected, x))
    elif BACKEND == "torch":
        import torch

        x = torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=True)
        (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
        seconds = [
            torch.autograd.grad((grad * torch.tensor(v, dtype=x.dtype)).sum(), x, retain_graph=True)[0]
            for v in directions
        ]
    else:
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(values, dtype=dtype)
        grad_fn = jax.grad(lambda u: jnp.sum(fn(u)))
        grad = grad_fn(x)
        seconds = [
            jax.grad(lambda u, v=v: jnp.sum(grad_fn(u) * jnp.asarray(v, dtype=dtype)))(x) for v in directions
        ]
    return _np(grad), [_np(s) for s in seconds]


def _jvp(fn, values, tangent, dtype):
    """Forward mode: (fn(x), d fn(x) [tangent]) with the backend's forward-mode autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(values, dtype=dtype)
        with tf.autodiff.ForwardAccumulator(x, tf.constant(tangent, dtype=dtype)) as acc:
            out = fn(x)
        return _np(out), _np(acc.jvp(out))
    if BACKEND == "torch":
        import torch

        x = torch.tensor(values, dtype=getattr(torch, dtype))
        out, dout = torch.func.jvp(fn, (x,), (torch.tensor(tangent, dtype=x.dtype),))
        return _np(out), _np(dout)
    import jax
    import jax.numpy as jnp

    out, dout = jax.jvp(fn, (jnp.asarray(values, dtype=dtype),), (jnp.asarray(tangent, dtype=dtype),))
    return _np(out), _np(dout)


def _assert_close(out, ref, rtol, atol, what):
    assert np.all(np.isfinite(out)), f"{what}: not finite: {out}"
    err = np.abs(out - ref)
    bound = rtol * np.abs(ref) + atol
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), (
        f"{what} [{BACKEND}]: |out - ref| = {err.flat[worst]:.3e} > {bound.flat[worst]:.3e} "
        f"(out {out.flat[worst]!r}, ref {ref.flat[worst]!r})"
    )


def _sigmoid_points(dtype):
    big = (50.0, 40.0, 20.0) if dtype == "float32" else (700.0, 360.0, 50.0, 37.0)
    x = [s * b for b in big for s in (1.0, -1.0)] + [-8.0, -3.0, -0.5, 0.0, 0.7, 2.0, 6.0, 15.0]
    logits = np.array(x * 3)
    n = len(x)
    targets = np.concatenate([np.ones(n), np.zeros(n), np.resize([0.3, 0.9, 0.05, 0.5], n)])
    return logits.astype(dtype).astype(np.float64), targets.astype(dtype).astype(np.float64)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_second_derivative_matches_reference(dtype, gamma):
    logits, targets = _sigmoid_points(dtype)
    for alpha in (0.25, None):
        _, (second,) = _grad_and_second(
            lambda v: fk.sigmoid_focal_loss(v, targets.astype(dtype), alpha=alpha, gamma=gamma),
            logits,
            dtype,
            [np.ones_like(logits)],
        )
        ref = focal_ref.sigmoid_focal_loss_hess(logits, targets, alpha=alpha, gamma=gamma)
        # soft labels: d^2 FL/dx^2 is a sum of terms that cancel; bound the error by the terms' size
        scale = np.abs(focal_ref.sigmoid_focal_loss_hess(logits, np.round(targets), alpha=alpha, gamma=gamma))
        soft = (targets > 0) & (targets < 1)
        atol = ATOL[dtype] + np.where(soft, RTOL[dtype] * (scale + 1e-3 * (np.abs(logits) < 20)), 0.0)
        _assert_close(second, ref, RTOL[dtype], atol, f"d2 sigmoid_focal_loss gamma={gamma} alpha={alpha}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_focal_loss_star_second_derivative(dtype):
    logits, targets = _sigmoid_points(dtype)
    hard = (targets == 0) | (targets == 1)
    x, y = logits[hard], targets[hard]
    for gamma in (0.5, 1.0, 2.0):
        _, (second,) = _grad_and_second(
            lambda v: fk.sigmoid_focal_loss_star(v, y.astype(dtype), gamma=gamma, beta=1.0),
            x,
            dtype,
            [np.ones_like(x)],
        )
        ref = focal_ref.sigmoid_focal_loss_star_hess(x, y, gamma=gamma, beta=1.0)
        _assert_close(second, ref, RTOL[dtype], ATOL[dtype], f"d2 FL* gamma={gamma}")


def _softmax_rows(dtype):
    big = 50.0 if dtype == "float32" else 360.0
    rows = np.array(
        [
            [big, 0.0, -1.0],
            [-big, 0.0, 1.0],
            [big, big, 0.0],
            [0.3, -0.2, 0.1],
            [2.0, -1.0, 0.5],
            [big, -big, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    labels = np.array([0, 0, 1, 2, 1, 1, 0])
    return rows.astype(dtype).astype(np.float64), labels


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_per_row_hessian_matches_reference(dtype, gamma):
    rows, labels = _softmax_rows(dtype)
    onehot = np.eye(3)[labels]
    soft = 0.8 * onehot + 0.1
    num_classes = rows.shape[1]
    directions = [np.broadcast_to(np.eye(num_classes)[j], rows.shape).copy() for j in range(num_classes)]
    for targets in (labels, soft):
        typed = targets.astype("int32") if targets is labels else targets.astype(dtype)
        for alpha in (None, [0.25, 0.5, 1.0]):
            _, seconds = _grad_and_second(
                lambda v: fk.softmax_focal_loss(v, typed, alpha=alpha, gamma=gamma),
                rows,
                dtype,
                directions,
            )
            hessian = np.stack(seconds, axis=-2)  # [n, j, k] = d/dx_k (dFL/dx_j)
            ref = focal_ref.softmax_focal_loss_hessian(rows, targets, alpha=alpha, gamma=gamma)
            # a sample's Hessian is one matrix: its error is measured against its largest entry
            scale = np.max(np.abs(ref), axis=(-2, -1), keepdims=True)
            _assert_close(
                hessian,
                ref,
                0.0,
                RTOL[dtype] * scale + ATOL[dtype],
                f"softmax Hessian gamma={gamma} alpha={alpha} {'indices' if targets is labels else 'soft'}",
            )


@pytest.mark.parametrize("gamma", GAMMAS)
def test_probability_inputs_second_derivative_finite_inside(gamma):
    """binary/categorical_focal_loss: d^2/dp^2 against the reference's via the chain rule of p = sigma(x)."""
    logits = np.array([-6.0, -2.0, -0.3, 0.0, 0.4, 3.0, 7.0])
    targets = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0])
    probs = 1.0 / (1.0 + np.exp(-logits))
    _, (second,) = _grad_and_second(
        lambda v: fk.binary_focal_loss(v, targets, gamma=gamma), probs, "float64", [np.ones_like(probs)]
    )
    # d2FL/dx2 = FL_pp p'^2 + FL_p p'' with p' = p(1-p), p'' = p'(1-2p): solve for FL_pp
    d1 = probs * (1.0 - probs)
    fl_x = focal_ref.sigmoid_focal_loss_grad(logits, targets, gamma=gamma)
    fl_xx = focal_ref.sigmoid_focal_loss_hess(logits, targets, gamma=gamma)
    fl_p = fl_x / d1
    fl_pp = (fl_xx - fl_p * d1 * (1.0 - 2.0 * probs)) / d1**2
    _assert_close(second, fl_pp, 1e-7, 1e-9, f"d2 binary_focal_loss / dp2 gamma={gamma}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_mode_matches_reference(dtype):
    logits, targets = _sigmoid_points(dtype)
    tangent = np.linspace(-1.0, 2.0, logits.size)
    for gamma in GAMMAS:
        _, dout = _jvp(
            lambda v: fk.sigmoid_focal_loss(v, targets.astype(dtype), gamma=gamma),
            logits,
            tangent,
            dtype,
        )
        ref = focal_ref.sigmoid_focal_loss_grad(logits, targets, gamma=gamma) * tangent
        _assert_close(
            dout,
            ref,
            10 * RTOL[dtype],
            ATOL[dtype] + 1e-6 * (dtype == "float32") * np.abs(tangent) * (np.abs(logits) < 20),
            f"jvp sigmoid gamma={gamma}",
        )
    rows, labels = _softmax_rows(dtype)
    tangent = np.linspace(-1.0, 1.0, rows.size).reshape(rows.shape)
    for gamma in GAMMAS:
        _, dout = _jvp(
            lambda v: fk.softmax_focal_loss(v, labels.astype("int32"), gamma=gamma),
            rows,
            tangent,
            dtype,
        )
        grad = focal_ref.softmax_focal_loss_grad(rows, labels, gamma=gamma)
        ref = np.sum(grad * tangent, axis=-1)
        scale = np.sum(np.abs(grad * tangent), axis=-1)
        _assert_close(dout, ref, 0.0, 10 * RTOL[dtype] * scale + ATOL[dtype], f"jvp softmax gamma={gamma}")


@pytest.mark.skipif(BACKEND != "jax", reason="jax.hessian is JAX's")
def test_jax_hessian_is_diagonal_and_finite_at_saturation():
    import jax
    import jax.numpy as jnp

    for dtype, big in (("float32", 50.0), ("float64", 360.0)):
        x = np.array([big, -big, big, -big, 1.0])
        y = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
        for gamma in (0.5, 1.0, 2.0):
            hessian = np.asarray(
                jax.hessian(
                    lambda v: jnp.sum(fk.sigmoid_focal_loss(v, jnp.asarray(y, dtype=dtype), gamma=gamma))
                )(jnp.asarray(x, dtype=dtype)),
                dtype=np.float64,
            )
            assert np.all(np.isfinite(hessian)), (dtype, gamma, hessian)
            np.testing.assert_array_equal(hessian - np.diag(np.diag(hessian)), 0.0)
            ref = focal_ref.sigmoid_focal_loss_hess(x, y, gamma=gamma)
            _assert_close(
                np.diag(hessian), ref, RTOL[dtype], ATOL[dtype], f"jax.hessian {dtype} gamma={gamma}"
            )
